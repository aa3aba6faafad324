"""Classify texts with a fine-tuned scratchgpt model: see ``--help``."""

from scratchgpt.inference.classify import classify_main

if __name__ == "__main__":
    raise SystemExit(classify_main())
