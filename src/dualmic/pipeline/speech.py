"""Stage speech: the speech bank, talker clips of recorded words (see dualmic.data.speech).

Writes <out>/clips/clip_NNNNN.flac (``speech.clip_s`` seconds at ``simulate.sample_rate``,
16-bit) and <out>/index.csv (file, language, voice, package, n_words, words per clip), whole
or not at all. ``sources.kind: folder`` with ``sources.folder: data/speech`` trains on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dualmic.core.params import load_params
from dualmic.core.progress import progress_bar
from dualmic.data.speech import build_bank


def run(params: Path = Path("params.yaml"), out: Path = Path("data/speech")) -> None:
    p = load_params(params)
    with progress_bar("speech", p.speech.n_clips) as advance:
        index = build_bank(p.speech, p.simulate.sample_rate, out, advance=advance)
    print(
        f"speech: {len(index)} clips, {index['language'].nunique()} languages, "
        f"{index['voice'].nunique()} voices -> {out}",
        file=sys.stderr,
    )
