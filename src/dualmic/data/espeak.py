"""Talkers spoken by espeak-ng voices: the conditions test's, and optionally some training ones.

The conditions test speaks to the model with espeak-ng voices (``conditions.voices``) it never
trained on; online mixing can add talkers of other espeak-ng voices (``online.espeak_voices``,
languages the conditions test does not speak) to its pool. Each talker is a voice (cycled) at a
speaking rate and pitch drawn from the seeded generator, reading sentences made of words of the
voice's language (random word strings: the prosody, phonemes and pauses are those of speech, the
grammar is not); a voice of a language without words here reads the words of one that has them
with its own letter-to-sound rules. espeak-ng renders the same text with the same settings to
the same samples, so the talkers are reproducible; a different espeak-ng version may speak
differently.

Rendered clips are cached in memory (one espeak-ng run per talker and process).
"""

from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from dualmic.core.errors import DualmicError, one_line
from dualmic.core.schema_conditions import voice_language

ESPEAK = "espeak-ng"
SPEED_WPM = (130, 190)  # espeak-ng speaking rate, words per minute, drawn uniformly
PITCH = (20, 80)  # espeak-ng pitch, 0..99, drawn uniformly
SENTENCE_WORDS = (5, 11)  # words per sentence, drawn uniformly
_STREAM = 0x7A1  # keeps talker draws apart from other streams of the same seed
_EPS = 1e-8

WORDS: dict[str, tuple[str, ...]] = {
    "en": (
        "the", "a", "river", "morning", "window", "garden", "quickly", "never", "yellow", "small",
        "house", "people", "found", "bring", "little", "under", "station", "evening", "paper",
        "water", "travel", "silver", "open", "stone", "market", "children", "between", "after",
        "bright", "number", "question", "kitchen", "follow", "mountain", "certain", "table",
        "orange", "winter", "listen", "simple", "beautiful", "yesterday", "together", "camera",
    ),
    "de": (
        "der", "die", "das", "und", "Haus", "Wasser", "schnell", "immer", "Garten", "Fenster",
        "morgen", "Abend", "kleine", "große", "Straße", "Kinder", "fahren", "gehen", "sprechen",
        "Zeitung", "Bahnhof", "zwischen", "nachher", "grün", "Brot", "Küche", "Winter", "Sommer",
        "Berg", "Fluss", "vielleicht", "wunderbar", "gestern", "Tisch", "Stimme", "hören",
        "Wohnung", "Freunde", "Arbeit", "Frage", "langsam", "zusammen",
    ),
    "fr": (
        "le", "la", "les", "une", "maison", "jardin", "fenêtre", "rivière", "matin", "soir",
        "petit", "grand", "toujours", "jamais", "rapidement", "enfants", "marché", "pierre",
        "parler", "écouter", "voyager", "cuisine", "montagne", "hiver", "été", "question",
        "journal", "ensemble", "hier", "demain", "beaucoup", "lumière", "table", "voiture",
        "chanson", "boulangerie", "heureux", "lentement", "ville", "chemin", "nuages", "soleil",
    ),
    "es": (
        "el", "la", "los", "una", "casa", "jardín", "ventana", "río", "mañana", "noche",
        "pequeño", "grande", "siempre", "nunca", "rápido", "niños", "mercado", "piedra",
        "hablar", "escuchar", "viajar", "cocina", "montaña", "invierno", "verano", "pregunta",
        "periódico", "juntos", "ayer", "mucho", "luz", "mesa", "coche", "canción", "panadería",
        "feliz", "despacio", "ciudad", "camino", "nubes", "sol", "trabajo",
    ),
    "it": (
        "il", "la", "gli", "una", "casa", "giardino", "finestra", "fiume", "mattina", "sera",
        "piccolo", "grande", "sempre", "mai", "velocemente", "bambini", "mercato", "pietra",
        "parlare", "ascoltare", "viaggiare", "cucina", "montagna", "inverno", "estate",
        "domanda", "giornale", "insieme", "ieri", "domani", "molto", "luce", "tavolo",
        "macchina", "canzone", "felice", "piano", "città", "strada", "nuvole", "sole", "lavoro",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class TalkerSpec:
    """What espeak-ng is asked to say, and how."""

    voice: str
    speed_wpm: int
    pitch: int
    text: str


def sentences(rng: np.random.Generator, lang: str, n_words: int) -> str:
    """Sentences of random words of ``lang`` with at least ``n_words`` words in all."""
    words = WORDS[lang]
    out, count = [], 0
    while count < n_words:
        k = int(rng.integers(SENTENCE_WORDS[0], SENTENCE_WORDS[1] + 1))
        picked = [words[i] for i in rng.integers(len(words), size=k)]
        text = " ".join(picked)
        out.append(text[0].upper() + text[1:] + ".")
        count += k
    return " ".join(out)


def talker_specs(voices: tuple[str, ...], n_talkers: int, seed: int, min_seconds: float) -> list[TalkerSpec]:
    """``n_talkers`` talkers: voices cycled, rate and pitch drawn from ``seed``, each with text
    for at least ``min_seconds`` of speech at its rate."""
    rng = np.random.default_rng([seed, _STREAM])
    specs = []
    for t in range(n_talkers):
        voice = voices[t % len(voices)]
        speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
        pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
        n_words = math.ceil(1.2 * min_seconds * speed / 60) + 2  # pauses make speech slower
        lang = voice_language(voice)
        if lang not in WORDS:  # read another language's words: talker t takes them in turn
            lang = sorted(WORDS)[t % len(WORDS)]
        specs.append(TalkerSpec(voice, speed, pitch, sentences(rng, lang, n_words)))
    return specs


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def _speak(spec: TalkerSpec) -> tuple[np.ndarray, int]:
    """espeak-ng's audio of ``spec``: (mono float32 samples, sample rate)."""
    if not espeak_available():
        raise DualmicError(
            "espeak-ng not found: the conditions test's talkers (and online.talkers espeak) are "
            "spoken by it; install it "
            "(Debian/Ubuntu: apt-get install espeak-ng, or make espeak)"
        )
    cmd = [ESPEAK, "-v", spec.voice, "-s", str(spec.speed_wpm), "-p", str(spec.pitch), "--stdout", spec.text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        why = one_line(proc.stderr.decode(errors="replace")) or f"exit code {proc.returncode}"
        raise DualmicError(
            f"espeak-ng failed for voice {spec.voice!r}: {why}; check conditions.voices and "
            "online.espeak_voices (espeak-ng --voices)"
        )
    try:
        audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    except RuntimeError as err:  # sf.LibsndfileError is one
        raise DualmicError(f"espeak-ng gave unreadable audio for voice {spec.voice!r}: {err}") from err
    return (audio if audio.ndim == 1 else audio.mean(axis=1)), int(rate)


@functools.lru_cache(maxsize=512)
def talker_clip(spec: TalkerSpec, sample_rate: int) -> np.ndarray:
    """The talker's speech at ``sample_rate``: read-only float32, unit RMS, leading and trailing
    silence trimmed."""
    audio, rate = _speak(spec)
    if rate != sample_rate:
        audio = AF.resample(torch.from_numpy(audio), rate, sample_rate).numpy()
    loud = np.flatnonzero(np.abs(audio) > 1e-3 * (np.abs(audio).max() + _EPS))
    if len(loud) == 0:
        raise DualmicError(
            f"espeak-ng gave silence for voice {spec.voice!r}; check conditions.voices and "
            "online.espeak_voices"
        )
    audio = audio[loud[0] : loud[-1] + 1].astype(np.float32)
    audio /= np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + _EPS
    audio.setflags(write=False)
    return audio


class TalkerPool:
    """The clips of a list of talkers, and random excerpts of them."""

    def __init__(self, specs: list[TalkerSpec], sample_rate: int):
        self.specs = specs
        self.clips = [talker_clip(s, sample_rate) for s in specs]

    def __len__(self) -> int:
        return len(self.clips)

    def excerpts(self, rng: np.random.Generator, picks, n_samples: int) -> np.ndarray:
        """One excerpt of ``n_samples`` at a random start from each picked talker: (len(picks), n)
        float64; a clip shorter than that is repeated."""
        out = np.empty((len(picks), n_samples), dtype=np.float64)
        for j, t in enumerate(picks):
            clip = self.clips[int(t)]
            if len(clip) < n_samples:
                clip = np.resize(clip, n_samples)
            start = int(rng.integers(len(clip) - n_samples + 1))
            out[j] = clip[start : start + n_samples]
        return out
