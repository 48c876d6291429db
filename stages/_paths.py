"""Imported first by every stage: put the library beside the stages first on the import path.

DVC runs experiments (``dvc exp run --temp``, ``--queue``) in copies of the repository; each
copy's stages must run that copy's ``src/dualmic``, not whichever dualmic is installed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
