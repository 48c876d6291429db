"""Mirror averaging (evaluate.mirror): swapped channels are the mirrored scene, a -> 180 - a."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import LabelCoding, angle_to_class, class_centre_deg
from dualmic.data.features import FeatureConfig, features_from_audio
from dualmic.learn.decoding import slot_peak_deg
from dualmic.learn.inference import pooled_log_probs, room_log_probs
from dualmic.learn.mirror import match_slots, mirror_classes, mirror_features
from dualmic.learn.model import ModelConfig, SSLModel

LATERAL = LabelCoding(5.0, 36, counting=True, decode="peak")
CIRCLE = LabelCoding(5.0, 72, counting=True, decode="peak", circular=True)


@pytest.mark.parametrize(
    "channels", [("ipd",), ("ipd", "logmag"), ("ipd", "onset"), ("ipd", "logmag", "onset")]
)
def test_mirrored_features_are_the_features_of_the_swapped_channels(channels):
    cfg = FeatureConfig(16000, 512, 160, channels, 0.1)
    audio = torch.randn(3, 2, 8000, generator=torch.Generator().manual_seed(0))
    got = mirror_features(features_from_audio(audio, cfg))
    want = features_from_audio(audio.flip(1), cfg)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("coding", [LATERAL, CIRCLE], ids=["lateral", "azimuth360"])
def test_mirrored_classes_hold_the_mirrored_angle_and_keep_no_source(coding):
    n = coding.n_classes
    logp = np.log(np.full((n + 1, 1, n + 1), 1e-6))
    for k in range(n + 1):
        logp[k, 0, k] = 0.0  # example k: all probability on class k (k = n: "no source")
    back = mirror_classes(logp, coding)
    moved = back[:, 0].argmax(-1)
    span = 360.0 if coding.circular else 180.0
    want = angle_to_class((180.0 - class_centre_deg(np.arange(n), 5.0)) % span, 5.0, n)
    np.testing.assert_array_equal(moved[:n], want)
    assert moved[n] == n
    np.testing.assert_array_equal(mirror_classes(back, coding), logp)  # an involution


def test_classes_not_symmetric_about_90_degrees_are_refused():
    with pytest.raises(DualmicError, match="class_width_deg 7.0 does not divide 180"):
        mirror_classes(np.zeros((1, 2, 27)), LabelCoding(7.0, 26, counting=True))


def _slot(cls: int | None, n: int = 37) -> np.ndarray:
    row = np.full(n, np.log(1e-4))
    row[n - 1 if cls is None else cls] = 0.0
    return row


def test_slots_are_matched_not_reversed():
    a = np.stack([np.stack([_slot(6), _slot(20)]), np.stack([_slot(12), _slot(None)])])
    b = np.stack([np.stack([_slot(20), _slot(6)]), np.stack([_slot(12), _slot(None)])])
    got = match_slots(a, b)
    np.testing.assert_array_equal(got.argmax(-1), [[6, 20], [12, 36]])


def test_mirror_average_is_exactly_mirror_symmetric():
    """Whatever the weights, the averaged answer to the swapped channels is the mirror of the
    averaged answer to the recording: every angle a becomes 180 - a."""
    torch.manual_seed(0)
    cfg = ModelConfig(in_channels=4, n_frames=101, dim=32, depth=1, heads=2, dim_head=16, none_class=True)
    model = SSLModel(cfg).eval()
    feats = features_from_audio(
        torch.randn(4, 2, 16000, generator=torch.Generator().manual_seed(1)),
        FeatureConfig(16000, 512, 160, ("ipd", "logmag"), 0.1),
    )
    plain = slot_peak_deg(pooled_log_probs(model, feats, 50), LATERAL)
    swapped_plain = slot_peak_deg(pooled_log_probs(model, feats, 50, mirror=True), LATERAL)
    assert not np.allclose(np.sort(180.0 - swapped_plain, -1), np.sort(plain, -1))  # one pass is not
    sym = slot_peak_deg(room_log_probs(model, feats, 50, LATERAL, mirror=True)[0], LATERAL)
    sym_swapped = slot_peak_deg(
        room_log_probs(model, mirror_features(feats), 50, LATERAL, mirror=True)[0], LATERAL
    )
    np.testing.assert_allclose(np.sort(180.0 - sym_swapped, -1), np.sort(sym, -1), atol=1e-4)
    off = room_log_probs(model, feats, 50, LATERAL, mirror=False)[0]
    np.testing.assert_array_equal(off, pooled_log_probs(model, feats, 50))
