"""Classify texts with a fine-tuned scratchgpt model: see ``--help``."""

from scratchgpt.cli import classify_main  # parses the flags before torch is imported

if __name__ == "__main__":
    raise SystemExit(classify_main())
