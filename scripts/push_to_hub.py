"""Upload a fine-tuned model folder to the Hugging Face Hub: see ``--help``."""

from scratchgpt.cli import push_main  # parses the flags before torch is imported

if __name__ == "__main__":
    raise SystemExit(push_main())
