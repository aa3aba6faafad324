"""Labelled text -> tokenized splits: reading sources (``sources``), the settings shared by
finetune / prepare_data / evaluate (``arguments``), the preparation pipeline (dedupe, balance,
stratified split, tokenize: ``prepare``) and batching (``collate``).

``scratchgpt.data`` re-exports the public names of the reading and preparation modules, each
from the module that defines it, so one import serves scripts; they load on first use, so
importing ``scratchgpt.data.collate`` does not import ``datasets``.
"""

import importlib

_SUBMODULES = ("arguments", "collate", "prepare", "sources")
# The reading API, defined in scratchgpt.data.sources.
_SOURCES = (
    "FORMATS",
    "SMS_LABELS",
    "SMS_SHA256",
    "SMS_ZIP_URL",
    "BadLine",
    "BadLinePolicy",
    "DataError",
    "download_sms_spam",
    "extract_member",
    "read_hub_dataset",
    "read_labelled_file",
    "sms_spam_path",
)


def __getattr__(name: str):
    # import_module, not "from scratchgpt.data import x", which would ask this hook for x.
    if name in _SOURCES:
        return getattr(importlib.import_module("scratchgpt.data.sources"), name)
    if not name.startswith("_") and name not in _SUBMODULES:
        prepare = importlib.import_module("scratchgpt.data.prepare")
        if name in prepare.__all__:  # the pipeline's public names
            return getattr(prepare, name)
    raise AttributeError(f"module 'scratchgpt.data' has no attribute {name!r}")
