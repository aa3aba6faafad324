"""Offline ``evaluate`` metric modules, loaded by path (the stock ones need the Hub).

``load_metric()`` returns the ``classification`` module: accuracy, per-class and macro
precision/recall/F1, support and the confusion matrix in one ``compute`` call.
"""

from __future__ import annotations

from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).resolve().parent


def metric_path(name: str = "classification") -> Path:
    """Path of one of our metric files, for ``evaluate.load(str(path))``."""
    path = METRICS_DIR / f"{name}.py"
    if name.startswith("_") or not path.is_file():
        available = sorted(p.stem for p in METRICS_DIR.glob("*.py") if not p.stem.startswith("_"))
        raise ValueError(f"unknown metric {name!r}: available {available} in {METRICS_DIR}")
    return path


def load_metric(name: str = "classification", **kwargs) -> evaluate.EvaluationModule:
    """``evaluate.load`` one of our metric files by path, offline."""
    return evaluate.load(str(metric_path(name)), **kwargs)
