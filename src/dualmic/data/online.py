"""On-the-fly training mixtures: every training room mixed afresh in every epoch.

The features stage mixes each room once, so 3000 rooms are 3000 fixed mixtures. With
``train.mixing: online`` the train stage instead re-mixes the cached RIRs of the training rooms
for every batch, in torch: new talker excerpts, levels, noise and microphone errors each epoch,
under the same conditions the ``augment`` params describe (0, 1 or 2 talkers as
``features.active_sources`` draws them, a point noise source at a silent talker's position,
diffuse white / pink / brown / babble noise, sensor noise, imperfect microphones).

``augment.talker_overlap`` (a second voice from a talker's position), ``augment.talker_gaps``
(silences in a talker's excerpt) and ``augment.band_limit`` (a talker recorded in a narrow band)
edit the dry talkers first: :mod:`dualmic.data.talker_edits`.

Speed comes from drawing only scalars per example (:mod:`dualmic.data.online_draws`) and doing
all signal work batched:

* talkers and noise are excerpts of a :class:`Pool` held in memory (synthetic talkers from
  ``online.seed``, the recorded-voice bank ``data/speech``, and white / pink / brown noise), so
  an example is a list of clip indices, offsets and gains;
* every source is convolved with its RIRs in one batched FFT (a point noise replaces the silent
  talker's dry signal, so it costs nothing extra);
* diffuse fields, sensor noise and microphone responses are applied in the frequency domain to
  the rows that have them;
* the mixture is exactly one model window long.

Example ``i`` (a room index) in epoch ``e`` draws everything from
``default_rng([online.seed, e, i])``: it does not depend on the batch it lands in, the number of
processes or restarts, and the same params give bit-identical batches.
"""

from __future__ import annotations

import numpy as np
import torch

from dualmic.core.errors import DualmicError
from dualmic.core.labels import label_period, merge_close_slots, slot_angles
from dualmic.data.features import FeatureConfig, features_from_audio
from dualmic.data.online_draws import Draw, draw_example
from dualmic.data.pool import Pool
from dualmic.data.talker_edits import apply_edits, band_gains

_EPS = 1e-8
_MIC_PAD = 1024  # zero padding of the mic filters (the all-pass tail, |c|^1024, is gone by then)


def _next_pow2(n: int) -> int:
    return 1 << max(1, (int(n) - 1).bit_length())


class OnlineMixer:
    """Batches of (features, classes) for training rooms, re-mixed per epoch.

    Args:
        rirs: (n_rooms, S, 2, taps) the split's RIRs (a memmap is fine).
        angles: (n_rooms, S) label angles in source order (degrees).
        pool: talkers and noise to cut excerpts from.
        p: the params (``online``, ``augment``, ``features``, ``labels``, ``simulate``).
        mic_distance_m: (n_rooms,) metres between each room's two receivers, for the coherence of
            its diffuse noise (a split that mixes heads in: rooms.csv's ``mic_distance``); None =
            ``simulate.mic_offsets``' for every room.
    """

    def __init__(
        self,
        rirs: np.ndarray,
        angles: np.ndarray,
        pool: Pool,
        p,
        n_samples: int | None = None,
        noise_rirs: np.ndarray | None = None,
        mic_distance_m: np.ndarray | None = None,
    ):
        self.rirs, self.angles, self.pool, self.p = rirs, np.asarray(angles, dtype=np.float64), pool, p
        self.mic_distance = None if mic_distance_m is None else np.asarray(mic_distance_m, dtype=np.float32)
        self.noise_rirs = noise_rirs
        if p.augment.noise_source > 0 and (noise_rirs is None or noise_rirs.shape[1] == 0):
            raise DualmicError(
                f"augment.noise_source is {p.augment.noise_source} but the rooms have no noise "
                "positions: set simulate.noise_sources >= 1 (and re-run simulate)"
            )
        self.cfg = FeatureConfig.from_params(p)
        self.n = int(n_samples or round(p.model.window_seconds * p.simulate.sample_rate))
        self.taps = rirs.shape[-1]
        self.dry_len = self.n + self.taps - 1
        if self.dry_len > pool.clip_samples or self.n > pool.noise_samples:
            raise DualmicError(
                f"online.clip_s / online.noise_s must cover a model window plus the RIR "
                f"({self.dry_len / p.simulate.sample_rate:.2f} s)"
            )
        self.epoch = 0

    # ---------------------------------------------------------------- draws (numpy, per example)
    def draw(self, room: int) -> Draw:
        """Everything random about room ``room``'s example in the current epoch."""
        rng = np.random.default_rng([self.p.online.seed, self.epoch, room])
        n_positions = 0 if self.noise_rirs is None else self.noise_rirs.shape[1]
        return draw_example(rng, self.p, self.pool, self.rirs.shape[1], n_positions, self.dry_len, self.n)

    # ---------------------------------------------------------------- batched signal work (torch)
    def mixtures(self, rooms: np.ndarray) -> tuple[torch.Tensor, list[Draw]]:
        """(B, 2, n) unit-RMS mixtures of ``rooms`` in the current epoch, and their draws."""
        rooms = np.asarray(rooms, dtype=np.int64)
        draws = [self.draw(int(r)) for r in rooms]
        b, n_src, n = len(rooms), self.rirs.shape[1], self.n
        talkers, noise = self.pool.talkers, self.pool.noise
        dry = torch.empty(b, n_src, self.dry_len)
        for i, d in enumerate(draws):
            for k in range(n_src):
                if k not in d.talkers and d.point_noise is not None:
                    color, off, _ = d.point_noise
                    dry[i, k] = noise[color, off : off + self.dry_len]
                else:
                    dry[i, k] = talkers[d.clips[k], d.offsets[k] : d.offsets[k] + self.dry_len]
            apply_edits(dry[i], d.overlaps, d.gaps, talkers)
        order = np.argsort(rooms)  # sorted reads of a memmap are faster; undone below
        rir = torch.from_numpy(np.ascontiguousarray(self.rirs[rooms[order]], dtype=np.float32))
        rir = rir[torch.from_numpy(np.argsort(order))]
        images = self._reverberate(dry, rir, self._band_gains(draws))  # (B, S, 2, n)
        images = images / (images.pow(2).mean(dim=(2, 3), keepdim=True).sqrt() + _EPS)
        weight = torch.zeros(b, n_src)
        for i, d in enumerate(draws):
            for k in d.talkers:
                weight[i, k] = 10 ** (d.gains_db[k] / 20)
        mixture = (images * weight[:, :, None, None]).sum(1)
        for i, d in enumerate(draws):
            if d.point_noise is not None:
                silent = next(k for k in range(n_src) if k not in d.talkers)
                mixture[i] = _add_at_snr(mixture[i], images[i, silent], d.point_noise[2])
        mixture = self._noise_sources(mixture, rooms, draws)
        mixture = self._diffuse(mixture, rooms, draws)
        for i, d in enumerate(draws):
            if d.sensor is not None:
                a, c, snr = d.sensor
                mixture[i] = _add_at_snr(
                    mixture[i], torch.stack([noise[0, a : a + n], noise[0, c : c + n]]), snr
                )
        mixture = self._mics(mixture, draws)
        return mixture / (mixture.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + _EPS), draws

    def _band_gains(self, draws: list[Draw]) -> torch.Tensor | None:
        """(B, S, bins) spectral gains of the band-limited talkers of ``draws``, None if none is."""
        n_fft, n_src, rate = _next_pow2(self.dry_len), self.rirs.shape[1], self.p.simulate.sample_rate
        per = [band_gains(d.band_limits, n_src, n_fft, rate) for d in draws]
        if all(g is None for g in per):
            return None
        ones = torch.ones(n_src, n_fft // 2 + 1)
        return torch.stack([ones if g is None else g for g in per])

    def _reverberate(
        self, dry: torch.Tensor, rir: torch.Tensor, gains: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Steady-state images: dry (..., dry_len) through rir (..., M, taps) -> (..., M, n);
        ``gains`` (..., bins) filter the dry signals first."""
        n_fft = _next_pow2(self.dry_len)
        dry_spec = torch.fft.rfft(dry, n_fft)
        if gains is not None:
            dry_spec = dry_spec * gains
        spec = dry_spec[..., None, :] * torch.fft.rfft(rir, n_fft)
        return torch.fft.irfft(spec, n_fft)[..., self.taps - 1 : self.taps - 1 + self.n]

    def _noise_sources(self, mixture: torch.Tensor, rooms: np.ndarray, draws: list[Draw]) -> torch.Tensor:
        """A noise point source at one of the room's noise positions, through its own RIRs."""
        rows = [i for i, d in enumerate(draws) if d.noise_source is not None]
        if not rows:
            return mixture
        dry = torch.stack(
            [
                self.pool.noise[draws[i].noise_source[1], draws[i].noise_source[2] :][: self.dry_len]
                for i in rows
            ]
        )
        rir = torch.from_numpy(
            np.stack(
                [np.asarray(self.noise_rirs[rooms[i], draws[i].noise_source[0]], np.float32) for i in rows]
            )
        )
        image = self._reverberate(dry, rir)  # (R, 2, n)
        out = mixture.clone()
        for j, i in enumerate(rows):
            out[i] = _add_at_snr(mixture[i], image[j], draws[i].noise_source[3])
        return out

    def _diffuse(self, mixture: torch.Tensor, rooms: np.ndarray, draws: list[Draw]) -> torch.Tensor:
        rows = [i for i, d in enumerate(draws) if d.diffuse is not None]
        if not rows:
            return mixture
        n = self.n
        pairs = torch.empty(len(rows), 2, n)
        for j, i in enumerate(rows):
            kind, ids, offs, _ = draws[i].diffuse
            if kind == "babble":
                half = len(ids) // 2
                cut = [self.pool.talkers[c, o : o + n] for c, o in zip(ids, offs, strict=True)]
                pairs[j, 0], pairs[j, 1] = sum(cut[:half]), sum(cut[half:])
            else:
                for m in range(2):
                    pairs[j, m] = self.pool.noise[ids[0], offs[m] : offs[m] + n]
        n_fft = _next_pow2(n)
        spec = torch.fft.rfft(pairs, n_fft)
        freq = torch.fft.rfftfreq(n_fft, 1 / self.cfg.sample_rate)
        if self.mic_distance is None:
            coh = torch.sinc(2 * freq * self.cfg.mic_distance_m / self.cfg.speed_of_sound)
        else:  # each room's own receivers: (R, F)
            distance = torch.from_numpy(self.mic_distance[rooms[rows]])[:, None]
            coh = torch.sinc(2 * freq * distance / self.cfg.speed_of_sound)
        mixed = torch.stack([spec[:, 0], coh * spec[:, 0] + (1 - coh**2).clamp_min(0).sqrt() * spec[:, 1]], 1)
        field = torch.fft.irfft(mixed, n_fft)[..., :n]
        out = mixture.clone()
        for j, i in enumerate(rows):
            out[i] = _add_at_snr(mixture[i], field[j], draws[i].diffuse[3])
        return out

    def _mics(self, mixture: torch.Tensor, draws: list[Draw]) -> torch.Tensor:
        """Per-mic gain, tilt and all-pass (as :func:`dualmic.data.perturb.mic_mismatch`)."""
        rows = [i for i, d in enumerate(draws) if d.mic is not None]
        if not rows:
            return mixture
        n = self.n
        n_fft = _next_pow2(n + _MIC_PAD)
        params = torch.tensor([draws[i].mic for i in rows], dtype=torch.float32)  # (R, 3, 2)
        gain, tilt, c = (params[:, j, :, None] for j in range(3))
        z1 = torch.exp(-2j * torch.pi * torch.fft.rfftfreq(n_fft))
        response = (1 + tilt * (1 - z1) / 2) * (c + z1) / (1 + c * z1) * 10 ** (gain / 20)
        spec = torch.fft.rfft(mixture[rows], n_fft) * response
        out = mixture.clone()
        out[rows] = torch.fft.irfft(spec, n_fft)[..., 1 : n + 1]
        return out

    # ---------------------------------------------------------------- training batches
    def labels(self, rooms: np.ndarray, draws: list[Draw]) -> torch.Tensor:
        """(B, S) sorted slot angles (degrees, float32) of the active talkers: NaN per silent slot
        for a counting model, else every slot carries an active talker (one talker: both). A
        counting model's talkers closer than ``labels.min_separation_deg`` are one source."""
        angles = self.angles[np.asarray(rooms)]
        active = np.zeros(angles.shape, dtype=bool)
        for i, d in enumerate(draws):
            active[i, list(d.talkers)] = True
        lab = self.p.labels
        out = slot_angles(angles, active, lab.counting, label_period(lab.angle))
        if lab.counting:
            out = merge_close_slots(out, lab.min_separation_deg, label_period(lab.angle))
        return torch.from_numpy(out.astype(np.float32))

    def batch(self, rooms) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (B, C, F, T) float32, slot angles (B, S)) of ``rooms`` in the current epoch."""
        rooms = np.asarray([int(r) for r in rooms], dtype=np.int64)
        with torch.no_grad():
            mixture, draws = self.mixtures(rooms)
            feats = features_from_audio(mixture, self.cfg)
        return feats, self.labels(rooms, draws)


def _add_at_snr(mixture: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """As :func:`dualmic.data.perturb.add_at_snr`: a silent mixture gets the noise at unit power."""
    p_sig = mixture.pow(2).mean()
    p_noise = noise.pow(2).mean() + 1e-12
    if p_sig == 0:
        return mixture + noise / torch.sqrt(p_noise)
    return mixture + noise * torch.sqrt(p_sig / p_noise * 10 ** (-snr_db / 10))
