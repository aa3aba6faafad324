"""Upload a fine-tuned model folder to the Hugging Face Hub: see ``--help``."""

from scratchgpt.hub.push import push_main

if __name__ == "__main__":
    raise SystemExit(push_main())
