"""Generate text with a causal-LM model folder: see ``--help``."""

from scratchgpt.generation import generate_main

if __name__ == "__main__":
    raise SystemExit(generate_main())
