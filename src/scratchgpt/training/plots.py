"""Training curves as in the book's chapter 6: value against epochs, examples seen on top."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# A bare Figure, not pyplot: saving needs no display, and importing the library does not switch
# a notebook's plotting backend (pyplot's global state) to Agg behind the user's back.
from matplotlib.figure import Figure


def plot_curves(
    epochs: Sequence[float],
    examples_seen: Sequence[int],
    train_values: Sequence[float],
    val_values: Sequence[float],
    label: str,
    output_stem: Path,
) -> list[Path]:
    """Plot training and validation ``label`` and save ``<stem>.png`` and ``<stem>.pdf``.

    ``epochs`` and ``examples_seen`` are the same points on two scales: the top axis is drawn
    with an invisible copy of the training curve so both axes line up, as the book does.
    """
    if not (len(epochs) == len(examples_seen) == len(train_values) == len(val_values)):
        raise ValueError(
            f"plot_curves needs equal lengths, got epochs={len(epochs)}, "
            f"examples_seen={len(examples_seen)}, train={len(train_values)}, val={len(val_values)}"
        )
    fig = Figure(figsize=(5, 3))
    ax1 = fig.subplots()
    ax1.plot(epochs, train_values, label=f"Training {label}")
    ax1.plot(epochs, val_values, linestyle="-.", label=f"Validation {label}")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(label.capitalize())
    ax1.legend()
    ax2 = ax1.twiny()
    ax2.plot(examples_seen, train_values, alpha=0)
    ax2.set_xlabel("Examples seen")
    fig.tight_layout()
    paths = [output_stem.with_suffix(".png"), output_stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path)
    return paths
