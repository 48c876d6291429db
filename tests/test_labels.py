"""Tests of dualmic.core.labels: lateral vs azimuth angles on hand-computed vectors, class mapping."""

from __future__ import annotations

import numpy as np
import pytest

from dualmic.core.labels import (
    angle_to_class,
    azimuth_deg,
    class_centre_deg,
    lateral_deg,
    merge_close_slots,
    slot_angles,
    slot_key,
    sort_slots,
)

CASES = [
    # (direction in the array frame, lateral deg, azimuth deg)
    ((1.0, 0.0, 0.0), 0.0, 0.0),
    ((-1.0, 0.0, 0.0), 180.0, 180.0),
    ((0.0, 1.0, 0.0), 90.0, 90.0),
    ((0.0, -1.0, 0.0), 90.0, 90.0),
    ((0.0, 0.0, 1.0), 90.0, 0.0),  # straight up: atan2(0, 0) = 0
    ((1.0, 1.0, 0.0), 45.0, 45.0),
    ((1.0, 0.0, 1.0), 45.0, 0.0),  # elevated: the two angles differ
    ((-1.0, -1.0, 0.0), 135.0, 135.0),
    ((-1.0, 1.0, 0.0), 135.0, 135.0),  # front/back fold of the one above
    ((3.0, 0.0, -4.0), np.degrees(np.arccos(0.6)), 0.0),
    ((0.5, np.sqrt(3) / 2, 0.0), 60.0, 60.0),
    ((2.0, 2.0 * np.sqrt(3), 0.0), 60.0, 60.0),  # the norm does not matter
]


@pytest.mark.parametrize(("direction", "lateral", "azimuth"), CASES, ids=[str(c[0]) for c in CASES])
def test_angles_of_hand_computed_vectors(direction, lateral, azimuth):
    d = np.array(direction)
    assert lateral_deg(d) == pytest.approx(lateral, abs=1e-9)
    assert azimuth_deg(d) == pytest.approx(azimuth, abs=1e-9)


def test_angles_are_vectorised_over_leading_axes():
    d = np.array([c[0] for c in CASES]).reshape(3, 4, 3)
    np.testing.assert_allclose(lateral_deg(d), np.array([c[1] for c in CASES]).reshape(3, 4))
    np.testing.assert_allclose(azimuth_deg(d), np.array([c[2] for c in CASES]).reshape(3, 4))


def _random_directions(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lateral_equals_azimuth_in_the_horizontal_plane(seed):
    d = _random_directions(500, seed)
    d[:, 2] = 0.0
    np.testing.assert_allclose(lateral_deg(d), azimuth_deg(d), atol=1e-9)
    assert lateral_deg(d).min() >= 0 and lateral_deg(d).max() <= 180


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lateral_is_invariant_to_rotation_about_the_mic_axis(seed):
    rng = np.random.default_rng(seed + 100)
    d = _random_directions(500, seed)
    theta = rng.uniform(0, 2 * np.pi, size=500)
    c, s = np.cos(theta), np.sin(theta)
    rotated = np.stack([d[:, 0], c * d[:, 1] - s * d[:, 2], s * d[:, 1] + c * d[:, 2]], axis=1)
    np.testing.assert_allclose(lateral_deg(rotated), lateral_deg(d), atol=1e-9)
    # ... while the azimuth changes: it is not a property of the cone around the axis
    assert np.abs(azimuth_deg(rotated) - azimuth_deg(d)).max() > 45


@pytest.mark.parametrize("seed", [0, 1])
def test_azimuth_folds_front_and_back(seed):
    d = _random_directions(200, seed)
    mirrored = d * np.array([1.0, -1.0, 1.0])  # y -> -y
    np.testing.assert_allclose(azimuth_deg(mirrored), azimuth_deg(d), atol=1e-9)
    np.testing.assert_allclose(lateral_deg(mirrored), lateral_deg(d), atol=1e-9)


# ---------------------------------------------------------------- classes


@pytest.mark.parametrize(
    ("angle", "cls"),
    [(0.0, 0), (4.999, 0), (5.0, 1), (17.5, 3), (90.0, 18), (179.9, 35), (180.0, 35)],
)
def test_angle_to_class(angle, cls):
    out = angle_to_class(angle, 5.0, 36)
    assert out == cls and out.dtype == np.int64


def test_angle_to_class_is_vectorised_and_clipped():
    angles = np.array([[-1.0, 0.0, 2.5], [100.0, 180.0, 200.0]])
    np.testing.assert_array_equal(angle_to_class(angles, 5.0, 36), [[0, 0, 0], [20, 35, 35]])
    np.testing.assert_array_equal(angle_to_class([0.0, 9.99, 10.0, 180.0], 10.0, 18), [0, 0, 1, 17])


def test_class_centres():
    assert class_centre_deg(0, 5.0) == 2.5
    assert class_centre_deg(35, 5.0) == 177.5
    np.testing.assert_allclose(class_centre_deg(np.array([0, 3, 17]), 10.0), [5.0, 35.0, 175.0])


def test_class_centre_maps_back_to_its_class():
    classes = np.arange(36)
    np.testing.assert_array_equal(angle_to_class(class_centre_deg(classes, 5.0), 5.0, 36), classes)


# ---------------------------------------------------------------- talkers at one angle


def test_talkers_closer_than_the_separation_become_one_source_at_their_mean():
    slots = np.array([[10.0, 12.0], [10.0, 20.0], [5.0, np.nan], [np.nan, np.nan], [90.0, 92.99]])
    out = merge_close_slots(slots, 3.0)
    expected = [[11.0, np.nan], [10.0, 20.0], [5.0, np.nan], [np.nan, np.nan], [91.495, np.nan]]
    np.testing.assert_allclose(out, expected)
    np.testing.assert_array_equal(merge_close_slots(slots, 0.0), slots)  # 0: labels as they are
    assert np.isnan(slots[0, 1]) is np.False_  # the input is not changed


def test_on_a_circle_the_talkers_either_side_of_zero_are_neighbours():
    out = merge_close_slots(np.array([[1.0, 359.0], [1.0, 350.0]]), 3.0, 360.0)
    np.testing.assert_allclose(out, [[0.0, np.nan], [1.0, 350.0]])
    three = merge_close_slots(np.array([[0.5, 100.0, 359.0], [100.0, 358.0, 359.5]]), 3.0, 360.0)
    # sorted by the folded angle: 359.75 is 0.25 from the right ear, 100 is 80 from it
    np.testing.assert_allclose(three, [[359.75, 100.0, np.nan], [358.75, 100.0, np.nan]])


# ---------------------------------------------------------------- the order of the slots


def test_full_circle_slots_are_sorted_by_the_angle_both_ears_hear_alike():
    # 100 deg (front, 100 deg from the right ear) and 300 deg (behind, 60 deg from it): ascending
    # azimuth would put the one behind last, so the slot order would carry front/back
    slots = np.array([[100.0, 300.0], [300.0, 60.0], [np.nan, 200.0], [45.0, 315.0]])
    np.testing.assert_allclose(slot_key(slots, 360.0)[0], [100.0, 60.0])
    out = sort_slots(slots, 360.0)
    np.testing.assert_allclose(out, [[300.0, 100.0], [300.0, 60.0], [200.0, np.nan], [45.0, 315.0]])
    # mirror images keep their order (stable); a label on a line sorts as before
    np.testing.assert_allclose(sort_slots(slots[:2], None), np.sort(slots[:2], axis=1))
    # a source and its mirror image behind the head take the same slot of a one-talker room
    front, back = (
        slot_angles(np.array([[a, 170.0]]), np.array([[True, True]]), True, 360.0) for a in (30.0, 330.0)
    )
    np.testing.assert_allclose([front[0, 0], back[0, 0]], [30.0, 330.0])
    np.testing.assert_allclose([front[0, 1], back[0, 1]], [170.0, 170.0])
    lateral = slot_angles(np.array([[150.0, 30.0]]), np.array([[True, True]]), True)
    np.testing.assert_allclose(lateral, [[30.0, 150.0]])
