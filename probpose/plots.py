"""Pictures a person would rather look at than read: contact sheets of stick figures, a bar chart,
curves. Plain arrays in, a PNG out (matplotlib's Agg canvas, no display, written atomically).

Stick figures are drawn in a front view: 3D points ``(K, 3)`` (metres, y up) are shown as
``(x, y)``; 2D points ``(K, 2)`` are image pixels (y down) and are flipped so that up is up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probpose.files import atomic_path

__all__ = ["StickFigure", "stick_sheet", "bar_chart", "curves", "spread_frames"]

_DRAWN = "#1f4e79"
_OBSERVED = "#2a9d3f"
_HIDDEN = "#d62828"


@dataclass
class StickFigure:
    """One panel: ``points`` ``(K, 3)`` metres or ``(K, 2)`` pixels joined by ``edges`` (pairs of
    point indices); optional ``observed`` points of the same shape drawn as dots where
    ``observed_mask`` ``(K,)`` is true; ``hidden`` ``(K,)`` marks points no observation saw (red x)."""

    points: np.ndarray
    edges: Sequence[tuple[int, int]]
    label: str = ""
    observed: np.ndarray | None = None
    observed_mask: np.ndarray | None = None
    hidden: np.ndarray | None = None


def spread_frames(n: int, most: int) -> list[int]:
    """At most ``most`` frame indices spread evenly over ``n`` frames (first and last included)."""
    return sorted(set(np.linspace(0, n - 1, min(n, most)).round().astype(int).tolist()))


def _plane(points: np.ndarray) -> np.ndarray:
    """Front-view coordinates ``(K, 2)``: 3D -> (x, y); pixels -> (u, -v)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] not in (2, 3):
        raise ValueError(f"expected points (K, 2) or (K, 3), got {p.shape}")
    return p[:, :2].copy() if p.shape[1] == 3 else np.stack([p[:, 0], -p[:, 1]], axis=1)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")
    return path


def stick_sheet(figures: Sequence[StickFigure], path: str | Path, columns: int = 6, title: str = "") -> Path:
    """A contact sheet of stick figures, ``columns`` panels a row, each panel on its own scale
    (equal aspect). Observed points are green dots, hidden points red crosses. Returns ``path``."""
    if not figures:
        raise ValueError("no figures to draw")
    cols = max(1, min(columns, len(figures)))
    rows = math.ceil(len(figures) / cols)
    fig = _figure(2.0 * cols, 2.2 * rows + (0.4 if title else 0.0))
    for k, f in enumerate(figures):
        ax = fig.add_subplot(rows, cols, k + 1)
        p = _plane(f.points)
        for a, b in f.edges:
            ax.plot(p[[a, b], 0], p[[a, b], 1], color=_DRAWN, linewidth=1.6, solid_capstyle="round")
        ax.scatter(p[:, 0], p[:, 1], s=4, color=_DRAWN, zorder=3)
        shown = [p]
        if f.observed is not None:
            o = _plane(f.observed)
            m = np.ones(len(o), bool) if f.observed_mask is None else np.asarray(f.observed_mask, bool)
            ax.scatter(o[m, 0], o[m, 1], s=10, color=_OBSERVED, zorder=4, label="observed")
            shown.append(o[m])
        if f.hidden is not None and np.any(f.hidden):
            h = np.asarray(f.hidden, bool)
            ax.scatter(p[h, 0], p[h, 1], s=28, marker="x", color=_HIDDEN, zorder=5, label="hidden")
        allp = np.concatenate([s for s in shown if len(s)])
        allp = allp[np.isfinite(allp).all(1)]
        if len(allp):
            lo, hi = allp.min(0), allp.max(0)
            centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6) * 1.1
            ax.set_xlim(centre[0] - half, centre[0] + half)
            ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        if f.label:
            ax.set_title(f.label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def bar_chart(labels: Sequence[str], values: Sequence[float], path: str | Path, xlabel: str, title: str = "") -> Path:
    """Horizontal bars, one per label, largest at the top. Returns ``path``."""
    if len(labels) != len(values) or not labels:
        raise ValueError(f"expected as many values as labels (at least one), got {len(values)} and {len(labels)}")
    order = np.argsort(np.asarray(values, dtype=np.float64))
    fig = _figure(7.0, 1.0 + 0.22 * len(labels))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(np.arange(len(labels)), np.asarray(values, dtype=np.float64)[order], color=_DRAWN)
    ax.set_yticks(np.arange(len(labels)))
    ax.set_yticklabels([labels[i] for i in order], fontsize=7)
    ax.set_xlabel(xlabel)
    ax.axvline(0.0, color="black", linewidth=0.6)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
    points: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Lines ``name -> (x, y)`` and single ``points`` ``name -> (x, y)`` on one axis, labelled."""
    if not series and not points:
        raise ValueError("nothing to plot")
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for name, (x, y) in series.items():
        ax.plot(x, y, marker=".", markersize=3, linewidth=1.2, label=name)
    for name, (px, py) in (points or {}).items():
        ax.scatter([px], [py], s=30, marker="D", label=name, zorder=3)
    finals = [float(y[-1]) for _, y in series.values() if len(y)] + [float(y) for _, y in (points or {}).values()]
    lows = [float(np.min(y)) for _, y in series.values() if len(y)] + finals
    finals, lows = [v for v in finals if np.isfinite(v)], [v for v in lows if np.isfinite(v)]
    if finals and lows:  # the converged region in view, not the first, far-off values
        low, high = min(lows), max(finals)
        pad = max(high - low, 1e-6)
        ax.set_ylim(low - 0.1 * pad, high + 2.0 * pad)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, linewidth=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
