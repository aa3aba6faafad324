"""The record of a fine-tuning run: ``training_args.json`` in its output folder.

Training writes it (``scratchgpt.training.outputs``); the model card and the browser app read
it. One name per fact: the run's settings keep their flag names (``epochs``, ``lr``,
``lr_schedule``, ``lora_r``, ``keep_duplicates``: ``FinetuneArguments`` as ``to_config`` gives
them), and what the run found out is a field of :class:`RunRecord`. A fact that resolves a
flag keeps the flag's name and replaces it (``RESOLVED_FLAGS``: ``mixed_precision``, what
``auto`` chose; ``label_names``, the labels used; ``prefix_cache``,
``"on: ..."`` or ``"off: why"`` for ``auto``/``off``); no other name is both. The file is flat
(settings and facts side by side), as it always was.

To record one more fact, declare it below with a default (so older folders still read) and
pass it where the run learns it; it is written, read back and shown in the card's settings
block with no other change.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_RECORD_FILE = "training_args.json"
# Copies of flags under other names that earlier versions wrote beside the flags themselves;
# reading an old folder drops them (the flags they copy are in the file too).
OLD_COPIES = ("num_epochs", "learning_rate", "lr_scheduler", "lora_rank", "dedupe", "base_model")
# Flags whose value the run resolves: the record holds the resolved value under the flag's name.
RESOLVED_FLAGS = ("mixed_precision", "label_names", "prefix_cache")


@dataclass(kw_only=True)
class RunRecord:
    """A run's settings (its flags, resolved) and the facts it measured."""

    settings: dict[str, Any] = field(default_factory=dict)
    model_name: str | None = None  # the output folder's name: the card's title
    label_names: list[str] | None = None
    mixed_precision: str | None = None  # "no", "bf16" or "fp16", as the run used it
    mixed_precision_reason: str | None = None  # why: the flag, or what `auto` found
    num_train_examples: int | None = None
    parameters: dict[str, int] | None = None  # "total" and "trainable"
    prefix_cache: str | None = None  # "on: ..." or "off: <why>"
    num_processes: int | None = None
    distributed_type: str | None = None
    data_summary: dict[str, Any] | None = None  # DataSummary.to_dict(): source, splits, ...
    pretraining: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch
    seconds: dict[str, float] = field(default_factory=dict)  # per phase of the job
    global_steps: int | None = None
    epochs_completed: int | None = None
    examples_seen: int | None = None
    train_seconds: float | None = None
    best: dict[str, Any] | None = None  # with --keep-best: the best epoch and its checkpoint

    def __post_init__(self) -> None:
        shared = sorted(set(self.settings) & set(fact_names()))
        if shared:
            raise ValueError(f"run record: {shared} are both a setting and a fact")

    def get(self, name: str, default: Any = None) -> Any:
        """A fact, else a setting (or an extra key written by hand), else ``default``."""
        value = getattr(self, name) if name in fact_names() else self.settings.get(name)
        return default if value is None else value

    def to_json(self) -> dict[str, Any]:
        facts = {name: getattr(self, name) for name in fact_names()}
        return {**self.settings, **facts}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        facts = {name: data[name] for name in fact_names() if name in data}
        names = {*facts, *OLD_COPIES}
        return cls(settings={k: v for k, v in data.items() if k not in names}, **facts)


def fact_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RunRecord) if f.name != "settings")


def write_run_record(record: RunRecord, folder: Path) -> Path:
    path = folder / RUN_RECORD_FILE
    path.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    return path
