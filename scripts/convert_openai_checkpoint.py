"""Convert GPT-2 weights (OpenAI checkpoint, transformers folder, book .pth) into a model folder.

Example: python scripts/convert_openai_checkpoint.py --model-size 124M --download \
    --output-dir models/gpt2-small
Run with --help for every option; the logic lives in scratchgpt.weights.convert.
"""

from scratchgpt.cli import convert_main  # parses the flags before torch is imported

if __name__ == "__main__":
    raise SystemExit(convert_main())
