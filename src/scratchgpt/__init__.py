"""scratchgpt: the book's from-scratch GPT-2 as a Hugging Face model, tuned for classification.

The Python API (``finetune``, ``prepare_data``, ``evaluate``, ``classify``, ``generate``,
``convert``, ``push_to_hub`` and their ``*Arguments``) lives in ``scratchgpt.api`` and is
importable from here; it loads on first use, so ``import scratchgpt`` stays light.
"""

__version__ = "0.1.0"

# Importing the package registers the model with transformers' Auto classes.
from scratchgpt import folder as _folder  # noqa: E402,F401

_API = (
    "ClassifyArguments",
    "ConvertArguments",
    "DataArguments",
    "EvaluateArguments",
    "FinetuneArguments",
    "GenerateArguments",
    "PrepareDataArguments",
    "PushArguments",
    "classify",
    "convert",
    "evaluate",
    "finetune",
    "generate",
    "prepare_data",
    "push_to_hub",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from scratchgpt import api

        return getattr(api, name)
    raise AttributeError(f"module 'scratchgpt' has no attribute {name!r}")
