"""Labelled text -> tokenized splits: reading sources (``sources``), the settings shared by
finetune / prepare_data / evaluate (``arguments``), the preparation pipeline (dedupe, balance,
stratified split, tokenize: ``prepare``) and batching (``collate``).

``scratchgpt.data`` re-exports the public names of the reading and preparation modules, each
from the module that defines it, so one import serves scripts; they load on first use, so
importing ``scratchgpt.data.collate`` does not import ``datasets``.
"""

import importlib

# Each public name -> the module of this package that defines it.
_HOMES = {
    **dict.fromkeys(("DataArguments", "PrepareDataArguments"), "arguments"),
    **dict.fromkeys(
        (
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
        ),
        "sources",
    ),
    **dict.fromkeys(
        (
            "DataSummary",
            "PreparedData",
            "SplitStats",
            "TokenizeBatch",
            "build_prepared",
            "drop_duplicates",
            "length_stats",
            "load_prepared",
            "load_source",
            "prepare_data",
            "prepare_from_args",
            "resolve_model_source",
            "save_prepared",
            "split_sizes",
            "stratified_split",
            "tokenize_split",
            "undersample",
            "vocab_fingerprint",
        ),
        "prepare",
    ),
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"scratchgpt.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'scratchgpt.data' has no attribute {name!r}")
