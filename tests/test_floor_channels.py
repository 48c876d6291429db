"""The floor channels: each mic's rise above its per-bin floor over the model's window."""

import pytest
import torch
from tests_support import tiny_raw_params

from dualmic.core.params import parse_params
from dualmic.data.features import FeatureConfig, features_from_audio
from dualmic.learn.model import SSLModel, above_floor
from dualmic.learn.model_file import load_model, model_config, model_meta, save_model


def _logmag(audio: torch.Tensor) -> torch.Tensor:
    cfg = FeatureConfig(16000, 512, 160, ("ipd", "logmag"), 0.1)
    return features_from_audio(audio, cfg)[:, 2:4]


def test_steady_noise_stays_near_its_floor_and_words_rise_above_it():
    """White noise at both mics, with 0.2-s bursts of a 1 kHz tone 20 dB above the noise every
    0.5 s: in the tone's bin the burst frames rise about 20 dB over the floor, the noise-only
    frames stay within a few dB of it; bins the tone does not reach stay near the floor in every
    frame. Scaling the recording changes nothing."""
    g = torch.Generator().manual_seed(0)
    n = 16000
    noise = torch.randn(1, 2, n, generator=g) * 0.01
    t = torch.arange(n) / 16000
    on = ((t % 0.5) < 0.2).float()
    tone = 0.01 * 10 ** (20 / 20) * (256**0.5) * torch.sin(2 * torch.pi * 1000 * t) * on
    audio = noise + tone
    rise = above_floor(_logmag(audio))  # (1, 2, 256, 101), natural-log units
    db = 20 / torch.log(torch.tensor(10.0))
    centre = torch.arange(rise.shape[-1]) * 160 / 16000  # frame i's window: centre +- 16 ms
    phase = centre % 0.5
    inside, outside = (phase > 0.02) & (phase < 0.18), (phase > 0.22) & (phase < 0.48)
    tone_bin = 1000 * 512 // 16000 - 1  # the DC bin is dropped
    assert (rise[0, :, tone_bin, inside].median() * db) > 15.0
    assert (rise[0, :, tone_bin, outside].median() * db) < 6.0
    assert (rise[0, :, 150:, :].median() * db) < 6.0
    assert (rise >= 0).all()
    torch.testing.assert_close(above_floor(_logmag(audio * 30.0)), rise, atol=1e-3, rtol=0)


def test_floor_channels_feed_the_stem_and_leave_other_model_files_as_they_were(tmp_path):
    raw = tiny_raw_params()
    raw["features"]["channels"] = ["ipd", "logmag"]
    raw["model"]["floor_channels"] = False
    cfg = model_config(parse_params(raw))
    assert cfg.floor_channels is False and "floor_channels" not in cfg.to_dict()
    raw["model"]["floor_channels"] = True
    with_floor = model_config(parse_params(raw))
    assert with_floor.in_channels == cfg.in_channels == 4 and with_floor.to_dict()["floor_channels"]
    model = SSLModel(with_floor).eval()
    assert model.inter_conv[0][0].in_channels == 6 and SSLModel(cfg).inter_conv[0][0].in_channels == 4
    x = torch.randn(2, 4, with_floor.n_freq, with_floor.n_frames)
    save_model(tmp_path / "floor.pt", model, model_meta(parse_params(raw)))
    loaded, _ = load_model(tmp_path / "floor.pt")
    torch.testing.assert_close(loaded(x), model(x))
    with torch.no_grad():  # the floor channels alone carry a signal through the stem
        model.inter_conv[0][0].weight[:, :4] = 0.0
    x2 = x.clone()
    x2[:, 2:4, :, :10] += 3.0  # the first frames rise above the floor
    assert not torch.allclose(model(x2), model(x))
    raw["features"]["channels"] = ["ipd"]
    with pytest.raises(Exception, match="model.floor_channels reads the log-magnitude channels"):
        parse_params(raw)
