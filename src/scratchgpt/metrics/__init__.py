"""Offline ``evaluate`` metric modules, loaded by path (the stock ones need the Hub).

``load_metric()`` returns the ``classification`` module: accuracy, per-class and macro
precision/recall/F1, support and the confusion matrix in one ``compute`` call.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

METRICS_DIR = Path(__file__).resolve().parent


def _import_evaluate_library() -> ModuleType:
    """Import the ``evaluate`` library, not ``scripts/evaluate.py``.

    ``python scripts/anything.py`` puts ``scripts/`` first on ``sys.path``, where our
    ``evaluate.py`` command would shadow the library for every script (finetune.py included).
    Any folder holding a bare ``evaluate.py`` is left out while importing, wherever the
    scripts were launched from.
    """
    cached = sys.modules.get("evaluate")
    if cached is not None and hasattr(cached, "load"):
        return cached
    sys.modules.pop("evaluate", None)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if not (Path(p or os.getcwd()) / "evaluate.py").is_file()]
    try:
        return importlib.import_module("evaluate")
    finally:
        sys.path[:] = saved


evaluate = _import_evaluate_library()


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
