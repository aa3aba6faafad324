"""Evaluate a fine-tuned classifier folder on a data split: see ``--help``."""

from scratchgpt.inference.evaluate import evaluate_main

if __name__ == "__main__":
    raise SystemExit(evaluate_main())
