"""Evaluate a fine-tuned classifier folder on a data split: see ``--help``."""

from scratchgpt.cli import evaluate_main  # parses the flags before torch is imported

if __name__ == "__main__":
    raise SystemExit(evaluate_main())
