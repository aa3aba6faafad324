"""scratchgpt: the book's from-scratch GPT-2 as a Hugging Face model, tuned for classification.

The Python API (``finetune``, ``prepare_data``, ``evaluate``, ``classify``, ``generate``,
``convert``, ``push_to_hub``, ``push_space``, ``build_app`` and their ``*Arguments``) lives in
``scratchgpt.api`` and is importable from here; it loads on first use, so ``import scratchgpt``
stays light: every script parses its flags (and answers ``--help``) before torch or
transformers' model code is imported. (The app's builder is ``build_app``, not ``app``:
``scratchgpt.app`` is its subpackage, and a function of the same name would be shadowed once
the subpackage is imported.)

The Auto classes (``AutoConfig``, ``AutoModel*``) learn our model when ``scratchgpt.folder`` is
imported, which everything that loads or saves a model does; elsewhere call
``scratchgpt.register_auto_classes()`` first, or pass ``trust_remote_code=True``.
"""

from scratchgpt.api_names import API_NAMES

__version__ = "0.1.0"
__all__ = ["__version__", "register_auto_classes", *API_NAMES]


def __getattr__(name: str):
    if name == "register_auto_classes":
        from scratchgpt.folder import register_auto_classes

        return register_auto_classes
    if name in API_NAMES:
        from scratchgpt import api

        return getattr(api, name)
    raise AttributeError(f"module 'scratchgpt' has no attribute {name!r}")
