"""Generate text with a causal-LM model folder: see ``--help``."""

from scratchgpt.inference.generate import generate_main

if __name__ == "__main__":
    raise SystemExit(generate_main())
