"""Training curves as in the book's chapter 6: value against epochs, examples seen on top."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# A bare Figure, not pyplot: saving needs no display, and importing the library does not switch
# a notebook's plotting backend (pyplot's global state) to Agg behind the user's back.
from matplotlib.figure import Figure


@dataclass
class Series:
    """One line of a plot: its legend text, x positions (epochs) and values."""

    label: str
    epochs: Sequence[float]
    values: Sequence[float]
    style: str = "-"
    marker: str | None = None
    annotate_last: bool = False  # print the last value next to its point


def plot_series(
    series: Sequence[Series],
    examples_at: tuple[Sequence[float], Sequence[int]],
    ylabel: str,
    title: str,
    output_stem: Path,
) -> list[Path]:
    """Plot ``series`` against epochs and save ``<stem>.png`` and ``<stem>.pdf``.

    ``examples_at`` is (epochs, examples seen) at the same points: the top axis shows examples
    seen, drawn with an invisible line so both axes line up, as the book does.
    """
    for line in series:
        if len(line.epochs) != len(line.values):
            raise ValueError(
                f"series {line.label!r} has {len(line.epochs)} x values "
                f"but {len(line.values)} y values"
            )
    fig = Figure(figsize=(6, 3.6))
    ax1 = fig.subplots()
    for line in series:
        ax1.plot(line.epochs, line.values, line.style, marker=line.marker, label=line.label)
        if line.annotate_last and line.values:
            ax1.annotate(
                f"{line.values[-1]:.4g}",
                (line.epochs[-1], line.values[-1]),
                textcoords="offset points",
                xytext=(-6, 6),
                ha="right",
                fontsize=8,
            )
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(ylabel)
    ax1.legend(fontsize=7)
    ax2 = ax1.twiny()
    ax2.plot(examples_at[1], [series[0].values[0]] * len(examples_at[1]), alpha=0)
    ax2.set_xlim(*_matching_limits(ax1.get_xlim(), examples_at))
    ax2.set_xlabel("Examples seen")
    fig.suptitle(title, fontsize=10, fontweight="bold")  # above the top axis, not on it
    fig.tight_layout()
    paths = [output_stem.with_suffix(".png"), output_stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path)
    return paths


def _matching_limits(
    epoch_limits: tuple[float, float], examples_at: tuple[Sequence[float], Sequence[int]]
) -> tuple[float, float]:
    """Examples-seen limits that line up with the epoch axis (examples grow linearly)."""
    epochs, examples = examples_at
    if len(epochs) < 2 or epochs[-1] == epochs[0]:
        per_epoch = examples[-1] / epochs[-1] if epochs and epochs[-1] else 1.0
    else:
        per_epoch = (examples[-1] - examples[0]) / (epochs[-1] - epochs[0])
    offset = examples[0] - per_epoch * epochs[0] if epochs else 0.0
    return tuple(offset + per_epoch * x for x in epoch_limits)
