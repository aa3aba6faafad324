"""scratchgpt: the book's from-scratch GPT-2 as a Hugging Face model, tuned for classification."""

__version__ = "0.1.0"
