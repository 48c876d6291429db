"""dualmic: two-microphone sound source localisation."""

__version__ = "0.1.0"
