"""scratchgpt: the book's from-scratch GPT-2 as a Hugging Face model, tuned for classification."""

__version__ = "0.1.0"

# Importing the package registers the model with transformers' Auto classes.
from scratchgpt import folder as _folder  # noqa: E402,F401
