"""Every script's ``--help`` lists the flags it had before issue 12 (typed arguments), with the
same defaults: ``fixtures/cli_flags.json`` was captured from the argparse parsers of 7b163bf.
Scripts added later (``app.py``, ``push_space.py``: issue 13) were captured when they were
added, so they keep their flags from then on too.
And ``--help`` (so any flag error too) answers before torch or the other heavy libraries load."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BEFORE = json.loads((Path(__file__).parent / "fixtures" / "cli_flags.json").read_text())
# Flags that issue 12 adds on purpose: recipe files.
ADDED = {"finetune.py": {"--config"}, "prepare_data.py": {"--config"}, "evaluate.py": {"--config"}}
# Issue 11: finetune's recipe defaults follow --init (the book's for pre-trained weights, a
# measured one for random weights), so the flags default to "unset" and --recipe resolves them.
ADDED["finetune.py"] |= {"--recipe", "--class-weights"}
# Next-token pretraining on the training texts before fine-tuning (off by default).
ADDED["finetune.py"] |= {"--pretrain-epochs"}
# One precision setting, "auto" by default (scratchgpt.precision): bf16 where the hardware runs it
# fast. Scoring commands gain --dtype; finetune's --mixed-precision gains "auto" as its default.
for _script in ("classify.py", "evaluate.py", "app.py"):
    ADDED.setdefault(_script, set()).add("--dtype")
CHANGED = {"finetune.py": {"--mixed-precision"}}
RECIPE_DEFAULTS = {
    "finetune.py": {
        "--model",
        "--trainable",
        "--pooling",
        "--lr",
        "--epochs",
        "--batch-size",
        "--lr-schedule",
        "--warmup-steps",
        "--drop-rate",
    }
}


def parser_of(script: str, monkeypatch) -> argparse.ArgumentParser:
    """Run ``scripts/<script> --help`` in this process and keep the parser that printed it."""
    seen = []
    real = argparse.ArgumentParser.print_help

    def print_help(self, file=None):
        seen.append(self)
        real(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", print_help)
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
    assert exit_info.value.code in (0, None)
    assert "usage:" in out.getvalue()
    return seen[-1]


def jsonable(value):
    return json.loads(json.dumps(value, default=str))


@pytest.mark.parametrize("script", sorted(BEFORE))
def test_help_lists_the_same_flags(script, monkeypatch):
    parser = parser_of(script, monkeypatch)
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    flags = {flag: a for a in actions for flag in a.option_strings}
    positionals = {a.dest: a for a in actions if not a.option_strings}
    before = BEFORE[script]
    assert set(flags) == set(before["flags"]) | ADDED.get(script, set())
    assert set(positionals) == set(before["positionals"])
    for name, old in before["positionals"].items():
        assert positionals[name].nargs == old["nargs"], name
        assert jsonable(positionals[name].default) == old["default"], name
    for flag, old in before["flags"].items():
        new = flags[flag]
        if old["nargs"] == 0:  # switches: present or not, whatever they store
            assert new.nargs == 0, f"{script} {flag} must stay a switch"
            continue
        if flag in CHANGED.get(script, ()):
            continue
        if flag in RECIPE_DEFAULTS.get(script, ()):
            assert new.default is None, f"{script} {flag}: the recipe sets it"
        else:
            assert jsonable(new.default) == old["default"], f"{script} {flag}"
        assert new.required == old["required"], f"{script} {flag}"
        if old["choices"]:
            assert list(new.choices) == old["choices"], f"{script} {flag}"


# Libraries that take seconds to import; a script must parse its flags without them.
HEAVY = ("torch", "transformers", "datasets", "accelerate", "numpy", "tiktoken")
# Runs a script's --help and reports, at exit, which heavy top-level packages were imported
# (the parser module transformers.hf_argparser alone is fine: it needs only yaml).
REPORT_IMPORTS = """
import atexit, json, runpy, sys
heavy = sys.argv[2].split(",")
def report():
    seen = [name for name in heavy if name in sys.modules]
    seen += sorted(n for n in sys.modules if n.startswith("transformers.") and n != HF)
    sys.stderr.write("IMPORTED " + json.dumps(seen) + chr(10))
HF = "transformers.hf_argparser"
atexit.register(report)
sys.argv = [sys.argv[1], "--help"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("script", sorted(BEFORE))
def test_help_imports_no_heavy_library(script):
    result = subprocess.run(
        [sys.executable, "-c", REPORT_IMPORTS, str(ROOT / "scripts" / script), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    report = [line for line in result.stderr.splitlines() if line.startswith("IMPORTED ")]
    assert json.loads(report[-1].removeprefix("IMPORTED ")) == []
