"""What a fine-tuning run carries: its progress (saved in every checkpoint) and its parts.

Shared by the loop (``loop.py``), checkpoints (``checkpoints.py``) and outputs (``outputs.py``),
which is why it lives apart from all three: none of them imports another to name a ``Run``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from scratchgpt.training.arguments import FinetuneArguments
from scratchgpt.training.run_folder import RunLock


@dataclass
class TrainState:
    """Progress saved in every checkpoint (accelerate pickles it via ``state_dict``)."""

    global_step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs completed
    batches_in_epoch: int = 0  # batches consumed in the running epoch (for mid-epoch resume)
    examples_seen: int = 0
    elapsed_s: float = 0.0  # training wall time of every session, up to the last save
    # The running epoch's training batches so far (this process): summed loss, correct
    # predictions, examples. Saved so a resumed epoch reports the same means.
    epoch_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    evals: list[dict] = field(default_factory=list)  # periodic train/val losses
    epochs: list[dict] = field(default_factory=list)  # per-epoch accuracies and losses
    best: dict = field(default_factory=dict)  # {"epoch", "accuracy", "loss", "checkpoint"}

    def state_dict(self) -> dict:
        self.tick()  # a checkpoint records the training time up to its own save
        return asdict(self)

    def start_clock(self) -> None:
        """Count training time from now on, on top of what earlier sessions recorded."""
        self._since = time.perf_counter()

    def stop_clock(self) -> None:
        self.tick()
        self._since = None

    def tick(self) -> None:
        since = getattr(self, "_since", None)  # not a field: never saved
        if since is not None:
            now = time.perf_counter()
            self.elapsed_s += now - since
            self._since = now

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class Run:
    """Everything the loop touches, built once by :func:`setup`."""

    args: FinetuneArguments
    accelerator: Accelerator
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: DataLoader
    eval_loaders: dict[str, DataLoader]  # whole splits, for the final metrics
    probe_loaders: dict[str, DataLoader]  # first --eval-iter batches of train/validation
    label_names: list[str]
    tokenizer_folder: Path
    state: TrainState
    info: dict  # facts for training_args.json and the card (cache, parameter counts, ...)
    steps_per_epoch: int = 0
    step_log: Path | None = None
    lock: RunLock = field(default_factory=RunLock)  # of the run folder, held while it runs
