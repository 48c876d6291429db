"""One split of the simulate stage: rooms, then RIRs, in batches of bounded size."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from dualmic.core.params import SimulateParams
from dualmic.sim.binaural import binaural_rirs
from dualmic.sim.fra import NOISE_STREAM, FraConfig, fra_rirs, image_draws
from dualmic.sim.hrtf import Hrtf, check_ears, load_hrtf
from dualmic.sim.rooms import Rooms, RoomSpec, sample_rooms


def room_spec(sim: SimulateParams, split: str | None = None) -> RoomSpec:
    """The room sampler's spec (with ``split``'s own rt60_range and head_fraction, if it has
    them)."""
    heads = 0.0 if split is None else sim.head_fraction_for(split)
    return RoomSpec(
        room_dim_min=sim.room_dim_min,
        room_dim_max=sim.room_dim_max,
        rt60_range=sim.rt60_range if split is None else sim.rt60_for(split),
        src_distance_range=sim.src_distance_range,
        min_wall_distance=sim.min_wall_distance,
        mic_offsets=sim.mic_offsets,
        rotate_array=sim.rotate_array,
        n_sources=sim.n_sources,
        noise_sources=sim.noise_sources,
        head_fraction=heads,
        ear_offsets=None if heads == 0 else _ears(sim),
    )


def heard_by_head(spec: RoomSpec, sim: SimulateParams) -> RoomSpec:
    """``spec`` with every room heard through the ears of the head of ``simulate.array.sofa``."""
    return dataclasses.replace(spec, head_fraction=1.0, ear_offsets=_ears(sim))


def _ears(sim: SimulateParams) -> tuple[tuple[float, float, float], ...]:
    return tuple(map(tuple, mixed_head(sim).ear_offsets.tolist()))


def fra_config(sim: SimulateParams, split: str | None = None) -> FraConfig:
    return FraConfig(
        sample_rate=sim.sample_rate,
        n_taps=sim.n_taps if split is None else sim.n_taps_for(split),
        n_images=sim.fra.n_images,
        oversample=sim.fra.oversample,
        highpass_hz=sim.fra.highpass_hz,
        reflection_jitter=sim.fra.reflection_jitter,
        speed_of_sound=sim.speed_of_sound,
        early_taps=early_taps(sim),
    )


def early_taps(sim: SimulateParams) -> int | None:
    """Arrivals before this sample are accumulated at the oversampled rate: the latest possible
    direct path (farthest source, array radius) plus ``simulate.fra.early_ms``; None = all."""
    if sim.fra.early_ms is None:
        return None
    latest = (sim.src_distance_range[1] + sim.array_radius_m) / sim.speed_of_sound
    return int(math.ceil((latest + sim.fra.early_ms / 1000) * sim.sample_rate))


def head(sim: SimulateParams) -> Hrtf | None:
    """The measured head of ``simulate.array`` (kind hrtf), checked against the mic positions;
    None for a free-field pair."""
    if sim.array.kind != "hrtf":
        return None
    hrtf = load_hrtf(sim.array.sofa, sim.sample_rate)
    check_ears(hrtf, sim.mic_offsets)
    return hrtf


def mixed_head(sim: SimulateParams) -> Hrtf:
    """The measured head of ``simulate.array.sofa`` that a free-field split's ``head_fraction``
    of rooms are heard through (its ears, not ``simulate.mic_offsets``, are their receivers)."""
    return load_hrtf(sim.array.sofa, sim.sample_rate)


def room_rirs(
    rooms: Rooms, draws: torch.Tensor, cfg: FraConfig, sim: SimulateParams, hrtf: Hrtf | None, device
) -> np.ndarray:
    """FRA-RIR RIRs of ``rooms`` (B, S, 2, n_taps) float32 on the CPU: to two free-field mics, or
    to the ears of ``hrtf`` (every room alike; a split that mixes heads in goes through
    :func:`_by_receivers`)."""
    with torch.inference_mode():
        if hrtf is None:
            return fra_rirs(rooms, draws, cfg, device).cpu().numpy()
        return binaural_rirs(rooms, draws, cfg, hrtf, sim.array.reflection_directions, device).cpu().numpy()


def _by_receivers(rooms: Rooms, render, sim: SimulateParams) -> np.ndarray:
    """RIRs of a batch whose rooms have a free-field pair or a head (``rooms.head``): each group
    rendered on its own by ``render(rooms, rows, hrtf or None)`` and put back in room order (a
    room's RIRs do not depend on the other rooms of its batch)."""
    parts = []
    for is_head in (False, True):
        rows = np.flatnonzero(rooms.head == is_head)
        if len(rows):
            sub = dataclasses.replace(rooms.take(rows), head=None)
            parts.append((rows, render(sub, torch.as_tensor(rows), mixed_head(sim) if is_head else None)))
    out = np.empty((len(rooms), *parts[0][1].shape[1:]), dtype=np.float32)
    for rows, rirs in parts:
        out[rows] = rirs
    return out


def simulate_batches(
    sim: SimulateParams, split: str, device: torch.device, noise: bool = False
) -> Iterator[tuple[int, Rooms, np.ndarray]]:
    """Yield ``(start, rooms, rirs)`` for consecutive batches of a split.

    ``rirs`` is (B, S, M, n_taps) float32 on the CPU. The result for a room depends only on the
    params and its index, never on batch size or device (beyond float rounding on CUDA). With
    ``noise`` the RIRs are those of the rooms' point-noise positions (B, N, M, n_taps), from
    image draws of their own.
    """
    split_p = sim.split(split)
    spec, cfg, method = room_spec(sim, split), fra_config(sim, split), sim.method_for(split)
    hrtf = head(sim)
    starts = list(range(0, split_p.n_rooms, sim.batch_size))

    def prepare(start: int):
        count = min(sim.batch_size, split_p.n_rooms - start)
        rooms = sample_rooms(spec, split_p.seed, start, count)
        n_src, stream = sim.n_sources, None
        if noise:
            rooms = dataclasses.replace(rooms, src_pos=rooms.noise_pos, stored_angles={})
            n_src, stream = sim.noise_sources, NOISE_STREAM
        if method == "ism":
            return rooms, None
        draws = image_draws(split_p.seed, start, count, n_src, cfg.n_images, *([stream] if stream else []))
        return rooms, draws

    # the next batch's rooms and random draws are made while this batch simulates
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare, starts[0])
        for i, start in enumerate(starts):
            rooms, draws = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(prepare, starts[i + 1])

            def render(sub: Rooms, rows, ears: Hrtf | None, draws=draws) -> np.ndarray:
                """RIRs of rooms ``sub`` (the batch's ``rows``) whose receivers are all ``ears``'s."""
                if method == "ism":
                    from dualmic.sim.ism import ism_rirs  # noqa: PLC0415 (pyroomacoustics: slow to import)

                    return ism_rirs(sub, sim.sample_rate, cfg.n_taps, sim.speed_of_sound, ears)
                return room_rirs(sub, draws[rows], cfg, sim, ears, device)

            if rooms.head is not None and hrtf is None:  # a free-field split that mixes heads in
                yield start, rooms, _by_receivers(rooms, render, sim)
            else:
                yield start, rooms, render(rooms, slice(None), hrtf)
