import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from tests_support import tiny_raw_params

from dualmic.core.params import parse_params
from dualmic.core.schema_learn import PRESETS
from dualmic.data.features import FeatureConfig, features_from_audio
from dualmic.learn.model import FRONTENDS, ModelConfig, SSLModel, frames_read, ild_spectrum, patch_grid
from dualmic.learn.model_file import model_config


@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("frames", [101, 301])
def test_logits_shape(channels, frames):
    cfg = ModelConfig(in_channels=channels, n_frames=frames, dim=32, depth=1, heads=2, dim_head=16)
    model = SSLModel(cfg).eval()
    out = model(torch.randn(3, channels, 256, frames))
    assert out.shape == (3, 2, 36)
    assert torch.isfinite(out).all()


def test_recipe_structure():
    model = SSLModel(ModelConfig(dim=64, depth=1))
    convs = [m for m in model.inter_conv.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (2, 4, (3, 3), (1, 1)),
        (4, 8, (3, 3), (1, 1)),
    ]
    patches = [m for m in model.patch_embed.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in patches] == [
        (8, 32, (4, 4)),
        (32, 128, (4, 4)),
        (128, 64, (4, 4)),
    ]
    assert patch_grid(256, 301) == (4, 4)
    assert model.pos.shape == (1, 4 * 4 + 2, 64) and model.cls.shape == (1, 2, 64)


def _preset_params(preset: str) -> dict:
    """Tiny params with the model left to its preset (no size overrides)."""
    raw = tiny_raw_params()
    raw["model"].update(preset=preset, dim=None, depth=None, heads=8, dim_head=64)
    return raw


def test_seed_preset_is_the_published_size():
    raw = _preset_params("seed")
    cfg = model_config(parse_params(raw))
    assert (cfg.dim, cfg.depth, cfg.heads, cfg.dim_head, cfg.conv_kernel_size) == (512, 8, 8, 64, 31)
    assert cfg.n_frames == 301 and PRESETS["seed"]["window_s"] == 3.0


def test_overrides_and_channels_follow_params():
    raw = _preset_params("small")
    raw["model"]["dim"] = 48
    raw["features"]["channels"] = ["ipd", "logmag"]
    cfg = model_config(parse_params(raw))
    assert cfg.dim == 48 and cfg.depth == PRESETS["small"]["depth"] and cfg.in_channels == 4


def test_slots_are_distinguishable():
    """The two CLS tokens must be able to answer differently for the same input."""
    torch.manual_seed(0)
    model = SSLModel(ModelConfig(dim=32, depth=1, heads=2, dim_head=16, n_frames=101)).eval()
    out = model(torch.randn(1, 2, 256, 101))
    assert not torch.allclose(out[0, 0], out[0, 1])


@pytest.mark.parametrize("channels", [4, 6], ids=["logmag", "logmag+onset"])
def test_level_norm_makes_logmag_models_level_invariant(channels):
    """A recording's level shifts every log-magnitude by the same amount (and leaves the onsets,
    channels 4 and 5, as they are); a model with level_norm gives the same logits, one without it
    does not (its IPD channels are untouched either way)."""
    torch.manual_seed(0)
    x = torch.randn(2, channels, 256, 101)
    louder = x.clone()
    louder[:, 2:4] += math.log(10.0)  # +20 dB
    outs = {}
    for norm in (True, False):
        cfg = ModelConfig(
            in_channels=channels, n_frames=101, dim=32, depth=1, heads=2, dim_head=16, level_norm=norm
        )
        model = SSLModel(cfg).eval()
        with torch.inference_mode():
            outs[norm] = (model(x), model(louder))
    assert torch.allclose(*outs[True], atol=1e-5)
    assert not torch.allclose(*outs[False], atol=1e-3)


@pytest.mark.parametrize("rms", [0.1, 1.0, 10.0])
def test_log_level_is_the_window_rms(rms):
    """By Parseval, log_level of a window's features is the log of its audio's RMS (0 for the
    unit-RMS training windows), whatever the spectrum: white noise and a speech-like band."""
    cfg = ModelConfig(in_channels=4, n_frames=101, dim=32, depth=1, heads=2, dim_head=16, level_norm=True)
    model = SSLModel(cfg)
    feat_cfg = FeatureConfig(16000, 512, 160, ("ipd", "logmag"), 0.1)
    gen = torch.Generator().manual_seed(1)
    white = torch.randn(2, 2, 16000, generator=gen)
    band = torch.from_numpy(np.convolve(np.random.default_rng(2).normal(size=16400), np.hanning(9), "same"))
    speechlike = band[None, None, :16000].float().expand(2, 2, 16000) * torch.linspace(0.2, 1.0, 16000)
    for audio in (white, speechlike):
        audio = rms * audio / audio.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
        level = model.log_level(features_from_audio(audio, feat_cfg)[:, 2:])
        assert torch.allclose(level.flatten(), torch.full((2,), math.log(rms)), atol=0.02)


def test_level_norm_follows_param_and_logmag_channels():
    raw = tiny_raw_params()
    raw["model"]["floor_channels"] = False  # they read the log-magnitudes: [ipd] alone has none
    for norm, channels, expected in (
        (True, ["ipd"], False),
        (True, ["ipd", "logmag"], True),
        (False, ["ipd", "logmag"], False),
    ):
        raw["features"]["channels"] = channels
        raw["model"]["level_norm"] = norm
        assert model_config(parse_params(raw)).level_norm is expected


@pytest.mark.parametrize(
    ("frontend", "frames", "grid", "read"),
    [
        ("patches", 101, (4, 1), 64),
        ("patches", 301, (4, 4), 256),
        ("bands", 101, (16, 1), 96),
        ("bands", 301, (16, 1), 288),
        ("frames", 101, (4, 6), 96),
        ("frames", 301, (4, 18), 288),
    ],
)
def test_frontend_token_grids(frontend, frames, grid, read):
    assert patch_grid(256, frames, frontend) == grid
    assert frames_read(256, frames, frontend) == read
    cfg = ModelConfig(in_channels=4, n_frames=frames, dim=32, depth=1, heads=2, dim_head=16)
    model = SSLModel(replace(cfg, frontend=frontend)).eval()
    assert model.pos.shape == (1, grid[0] * grid[1] + 2, 32)
    assert model(torch.randn(2, 4, 256, frames)).shape == (2, 2, 36)


def test_ild_spectrum_reads_the_level_difference_of_the_direct_sound():
    """Per bin, mic 1 minus mic 0 over the louder frames, and over the onsets: a direct sound
    louder at mic 1 followed by a tail louder at mic 0 gives the direct sound's sign at onsets."""
    n_freq, n_frames = 4, 40
    left = torch.full((1, n_freq, n_frames), -6.0)
    right = left.clone()
    left[..., 10], right[..., 10] = 0.0, 1.0  # the onset: mic 1 louder by 1 (natural log)
    left[..., 11:20], right[..., 11:20] = -0.5, -1.0  # a louder-at-mic-0 tail, no rise
    spec = ild_spectrum(torch.stack([left, right], dim=1))
    assert spec.shape == (1, 1, 2 * n_freq)
    by_loud, by_onset = spec[0, 0, :n_freq], spec[0, 0, n_freq:]
    torch.testing.assert_close(by_onset, torch.full((n_freq,), 1.0), atol=0.02, rtol=0)
    torch.testing.assert_close(by_loud, torch.full((n_freq,), -0.35), atol=0.01, rtol=0)  # (1 - 9 x 0.5) / 10
    swapped = ild_spectrum(torch.stack([right, left], dim=1))
    torch.testing.assert_close(swapped, -spec)  # mirrored channels mirror the token's input


def test_ild_segments_keep_talkers_loud_at_different_moments_apart():
    """A talker louder at mic 1 in the first half of the window and one louder at mic 0 in the
    second: the whole window's row averages them, each span's row has its own talker's sign."""
    n_freq, n_frames = 3, 40
    left = torch.full((1, n_freq, n_frames), -6.0)
    right = left.clone()
    right[..., 5:15], left[..., 5:15] = 0.0, -1.0  # first talker: mic 1 louder by 1
    left[..., 25:35], right[..., 25:35] = 0.0, -1.0  # second talker: mic 0 louder by 1
    x = torch.stack([left, right], dim=1)
    whole, halves = ild_spectrum(x), ild_spectrum(x, segments=2)
    assert halves.shape == (1, 2, 2 * n_freq)
    torch.testing.assert_close(whole[0, 0, :n_freq], torch.zeros(n_freq), atol=1e-5, rtol=0)
    torch.testing.assert_close(halves[0, 0], torch.ones(2 * n_freq), atol=1e-5, rtol=0)
    torch.testing.assert_close(halves[0, 1], -torch.ones(2 * n_freq), atol=1e-5, rtol=0)


def test_ild_token_adds_one_token_and_leaves_other_model_files_as_they_were(tmp_path):
    from dualmic.learn.model_file import load_model, model_meta, save_model

    raw = tiny_raw_params()
    raw["features"]["channels"] = ["ipd", "logmag"]
    cfg = model_config(parse_params(raw))
    assert cfg.ild_token is False and "ild_token" not in cfg.to_dict()
    assert not any("ild" in k for k in SSLModel(cfg).state_dict())
    raw["model"]["ild_token"] = True
    with_token = model_config(parse_params(raw))
    model = SSLModel(with_token)
    assert model.pos.shape[1] == SSLModel(cfg).pos.shape[1] + 1 and with_token.to_dict()["ild_token"]
    x = torch.randn(2, with_token.in_channels, with_token.n_freq, with_token.n_frames)
    save_model(tmp_path / "ild.pt", model, model_meta(parse_params(raw)))
    loaded, _ = load_model(tmp_path / "ild.pt")
    torch.testing.assert_close(loaded(x), model.eval()(x))
    x2 = x.clone()
    x2[:, 3, 100:] += 2.0  # mic 1 louder in the upper half of the band: the token must change the answer
    assert not torch.allclose(model(x2), model(x))
    raw["model"]["ild_segments"] = 6  # the whole window's token and one per sixth of it
    with_spans = model_config(parse_params(raw))
    spans = SSLModel(with_spans)
    assert spans.pos.shape[1] == SSLModel(cfg).pos.shape[1] + 7 and with_spans.to_dict()["ild_segments"] == 6
    assert spans(x).shape == model(x).shape
    raw["features"]["channels"] = ["ipd"]
    with pytest.raises(Exception, match="model.ild_token reads the log-magnitude channels"):
        parse_params(raw)
    raw["features"]["channels"], raw["model"]["ild_token"] = ["ipd", "logmag"], False
    with pytest.raises(Exception, match="model.ild_segments 6 splits the level-difference token"):
        parse_params(raw)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_frontend_reads_the_frames_it_says(frontend):
    """Changing the frames past frames_read (+2 for the 3x3 convolutions) leaves the logits as
    they were; changing the frames just inside it does not. The published grid leaves the last
    third of a 1-s window unread, bands and frames read all but its last 5 frames."""
    torch.manual_seed(0)
    cfg = ModelConfig(in_channels=2, n_frames=101, dim=32, depth=1, heads=2, dim_head=16, frontend=frontend)
    model = SSLModel(cfg).eval()
    x = torch.randn(2, 2, 256, 101)
    read = frames_read(256, 101, frontend) + 2
    with torch.no_grad():
        ref = model(x)
        outside, inside = x.clone(), x.clone()
        outside[..., read:] = torch.randn_like(outside[..., read:])
        inside[..., read - 8 : read] = torch.randn_like(inside[..., read - 8 : read])
        assert torch.equal(model(outside), ref)
        assert not torch.allclose(model(inside), ref, atol=1e-4)


def test_frontend_follows_preset_and_param():
    raw = _preset_params("seed")
    raw["model"]["frontend"] = None
    assert model_config(parse_params(raw)).frontend == "patches"
    raw["model"]["frontend"] = "bands"
    assert model_config(parse_params(raw)).frontend == "bands"
    small = _preset_params("small")
    small["model"]["frontend"] = None
    assert model_config(parse_params(small)).frontend == PRESETS["small"]["frontend"]
    raw["model"]["frontend"] = "grid"
    with pytest.raises(Exception, match="frontend"):
        parse_params(raw)


def test_model_files_without_frontend_are_the_published_grid(tmp_path):
    """A model file written before model.frontend existed loads as the 4x4 patch grid."""
    from dualmic.core.files import save_torch
    from dualmic.learn.model_file import FORMAT, load_model

    cfg = ModelConfig(in_channels=2, n_frames=101, dim=32, depth=1, heads=2, dim_head=16)
    model = SSLModel(cfg)
    config = cfg.to_dict()
    del config["frontend"]
    payload = {"format": FORMAT, "config": config, "meta": {}, "state_dict": model.state_dict()}
    save_torch(tmp_path / "old.pt", payload)
    loaded, _ = load_model(tmp_path / "old.pt")
    assert loaded.cfg.frontend == "patches"


def test_stem_layers_sets_the_full_resolution_convolutions(tmp_path):
    """model.stem_layers 1: one 3x3 convolution straight to 8 channels before the patch
    convolutions (2: the published 4 -> 4 -> 8); the file of a one-layer model says so and loads
    back, and a two-layer model's file has no stem_layers key (the layout it always had)."""
    from dualmic.learn.model_file import load_model, model_meta, save_model

    raw = tiny_raw_params()
    assert model_config(parse_params(raw)).stem_layers == 2
    raw["model"]["stem_layers"] = 1
    cfg = model_config(parse_params(raw))
    assert cfg.stem_layers == 1
    one, two = SSLModel(cfg), SSLModel(replace(cfg, stem_layers=2))
    convs = [[m for m in net.inter_conv.modules() if isinstance(m, torch.nn.Conv2d)] for net in (one, two)]
    stem_in = cfg.in_channels + 2 * int(cfg.floor_channels)  # the floor channels are made in the model
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs[0]] == [(stem_in, 8, (3, 3))]
    assert [(c.in_channels, c.out_channels) for c in convs[1]] == [(stem_in, 4), (4, 8)]
    x = torch.randn(2, cfg.in_channels, cfg.n_freq, cfg.n_frames)
    assert one(x).shape == two(x).shape
    assert "stem_layers" not in two.cfg.to_dict() and one.cfg.to_dict()["stem_layers"] == 1
    save_model(tmp_path / "one.pt", one, model_meta(parse_params(raw)))
    loaded, _ = load_model(tmp_path / "one.pt")
    assert loaded.cfg.stem_layers == 1
    torch.testing.assert_close(loaded(x), one.eval()(x))
    raw["model"]["stem_layers"] = 3
    with pytest.raises(Exception, match="stem_layers"):
        parse_params(raw)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("frames", [101, 96, 301])
def test_bf16_autocast_on_cpu_matches_fp32(frames, frontend):
    """The forward pass under CPU bfloat16 autocast (train.precision) is finite and within
    bf16 rounding of fp32 for the default and the published input lengths. (oneDNN's AMX bf16
    convolution returned NaN when a stride-4 input had unread columns: 101 frames leave 6 after
    two stages; model.covered cuts them, which changes nothing in fp32.)"""
    torch.manual_seed(0)
    cfg = ModelConfig(in_channels=4, n_frames=frames, none_class=True, level_norm=True, frontend=frontend)
    net = SSLModel(cfg).eval()
    x = torch.randn(4, 4, 256, frames)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x).float()
    assert torch.isfinite(low).all()
    assert (low - ref).abs().max() < 0.05 * ref.abs().max()


def test_channels_last_convolutions_compute_the_same_model(monkeypatch):
    """ConvBnGelu convolves a channels-last copy (faster on the CPU): the outputs and every
    weight's gradient are those of the usual layout within float rounding, and the state-dict
    keys are those of the plain nn.Sequential it replaced, so older model files still load."""
    from dualmic.learn.model import ConvBnGelu

    torch.manual_seed(0)
    cfg = ModelConfig(
        in_channels=6, n_frames=101, none_class=True, level_norm=True, frontend="frames", floor_channels=True
    )
    net = SSLModel(cfg).train()
    assert {"inter_conv.0.0.weight", "inter_conv.1.1.running_mean", "patch_embed.2.0.bias"} <= set(
        net.state_dict()
    )
    x = torch.randn(3, 6, 256, 101)
    results = {}
    for last in (False, True):
        monkeypatch.setattr(ConvBnGelu, "channels_last", last)
        net.zero_grad()
        out = net(x)
        out.square().sum().backward()
        results[last] = (out.detach(), {k: p.grad.clone() for k, p in net.named_parameters()})
    (out_first, grads_first), (out_last, grads_last) = results[False], results[True]
    torch.testing.assert_close(out_last, out_first, rtol=1e-5, atol=1e-5)
    # (a convolution's bias before batch norm has a gradient of rounding noise only: BN takes the
    # mean out, so tolerances are relative to the largest gradient of the model)
    scale = max(g.abs().max().item() for g in grads_first.values())
    for name, grad in grads_first.items():
        torch.testing.assert_close(grads_last[name], grad, rtol=1e-4, atol=1e-5 * scale, msg=name)
