"""scratchgpt: the book's from-scratch GPT-2 as a Hugging Face model, tuned for classification.

The Python API (``finetune``, ``prepare_data``, ``evaluate``, ``classify``, ``generate``,
``convert``, ``push_to_hub``, ``push_space``, ``build_app`` and their ``*Arguments``) lives in
``scratchgpt.api`` and is importable from here; it loads on first use, so ``import scratchgpt``
stays light. (The app's builder is ``build_app``, not ``app``: ``scratchgpt.app`` is its
subpackage, and a function of the same name would be shadowed once the subpackage is imported.)
"""

__version__ = "0.1.0"

# Importing the package registers the model with transformers' Auto classes.
from scratchgpt import folder as _folder  # noqa: E402,F401

_API = (
    "AppArguments",
    "ClassifyArguments",
    "ConvertArguments",
    "DataArguments",
    "EvaluateArguments",
    "FinetuneArguments",
    "GenerateArguments",
    "PrepareDataArguments",
    "PushArguments",
    "SpaceArguments",
    "build_app",
    "classify",
    "convert",
    "evaluate",
    "finetune",
    "generate",
    "prepare_data",
    "push_space",
    "push_to_hub",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from scratchgpt import api

        return getattr(api, name)
    raise AttributeError(f"module 'scratchgpt' has no attribute {name!r}")
