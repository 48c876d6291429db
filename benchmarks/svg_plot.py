"""A small SVG line-plot renderer, so the benchmarks draw figures without matplotlib.

One figure is a grid of panels under a one-line heading; each panel has a title, a frame, three
ticks on each axis and one polyline per curve. Call :func:`line_panels_svg`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

PANEL_WIDTH = 420  # pixels per panel
PANEL_HEIGHT = 220
PAD_LEFT = 45  # room for the y tick labels
HEADING_HEIGHT = 30


@dataclass(frozen=True)
class Panel:
    """One panel: curves ``lines`` (colour, y) over the shared x values ``t``.

    ``t`` is ascending; every y has its length, and non-finite points are left out of the line.
    y values outside ``ylim`` are drawn at the edge. ``unit`` follows the x tick labels.
    """

    title: str
    t: np.ndarray
    lines: Sequence[tuple[str, np.ndarray]]
    ylim: tuple[float, float]
    unit: str = ""


def line_panels_svg(rows: Sequence[Sequence[Panel]], heading: str) -> str:
    """The SVG document (text) of a figure: ``rows`` of panels, left to right, under ``heading``."""
    columns = max((len(row) for row in rows), default=0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{columns * PANEL_WIDTH}" '
        f'height="{len(rows) * PANEL_HEIGHT + HEADING_HEIGHT}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="18" font-size="13">{escape(heading)}</text>',
    ]
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            out += _panel(c * PANEL_WIDTH, HEADING_HEIGHT + r * PANEL_HEIGHT, panel)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _panel(x0: int, y0: int, panel: Panel) -> list[str]:
    """The SVG elements of one panel whose top-left corner is (x0, y0)."""
    left, right = x0 + PAD_LEFT, x0 + PANEL_WIDTH - 10
    top, bottom = y0 + 20, y0 + PANEL_HEIGHT - 25
    t, (ymin, ymax) = panel.t, panel.ylim
    tmin, tmax = float(t[0]), float(t[-1])

    def sx(v):
        return left + (v - tmin) / (tmax - tmin) * (right - left)

    def sy(v):
        return bottom - (np.clip(v, ymin, ymax) - ymin) / (ymax - ymin) * (bottom - top)

    out = [
        f'<text x="{left}" y="{y0 + 14}">{escape(panel.title)}</text>',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="none" stroke="#888"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = ymin + frac * (ymax - ymin)
        out.append(f'<text x="{left - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
        tv = tmin + frac * (tmax - tmin)
        label = escape(f"{tv:.0f} {panel.unit}")
        out.append(f'<text x="{sx(tv):.1f}" y="{bottom + 14}" text-anchor="middle">{label}</text>')
    for colour, y in panel.lines:
        ok = np.isfinite(y)
        pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(t[ok], y[ok], strict=True))
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-opacity="0.75" stroke-width="1" points="{pts}"/>'
        )
    return out
