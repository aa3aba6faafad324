"""Pretrained weights -> model folders: OpenAI's TensorFlow checkpoints (read without
TensorFlow, ``tf_checkpoint``), transformers GPT-2 folders and the book's ``.pth`` (``sources``),
converted and written as scratchgpt model folders (``convert``).
"""
