"""Generate text with a causal-LM model folder: see ``--help``."""

from scratchgpt.cli import generate_main  # parses the flags before torch is imported

if __name__ == "__main__":
    raise SystemExit(generate_main())
