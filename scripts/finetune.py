"""Fine-tune a from-scratch GPT-2 as a text classifier (the book's chapter-6 recipe).

    accelerate launch --config_file configs/accelerate.yaml -q scripts/finetune.py  # GPT-2 124M
    python scripts/finetune.py --init random --data-file FILE   # offline
    python scripts/finetune.py --help                           # every flag

The loop lives in ``scratchgpt.training.loop`` so tests can call it.
"""

from scratchgpt.cli import finetune_main  # parses the flags before torch is imported

if __name__ == "__main__":
    raise SystemExit(finetune_main())
