"""Labelled text -> tokenized splits: reading sources (``sources``), the settings shared by
finetune / prepare_data / evaluate (``arguments``), the preparation pipeline (dedupe, balance,
stratified split, tokenize: ``prepare``) and batching (``collate``).

``scratchgpt.data`` re-exports the pipeline's public names, so one import serves scripts; they
load on first use, so importing ``scratchgpt.data.collate`` does not import ``datasets``.
"""

__all__ = [
    "BadLine",
    "BadLinePolicy",
    "CACHE_ENV",
    "DataArguments",
    "DataError",
    "DataSummary",
    "FORMATS",
    "PrepareDataArguments",
    "PreparedData",
    "SMS_LABELS",
    "SMS_SHA256",
    "SMS_ZIP_URL",
    "SplitStats",
    "TokenizeBatch",
    "build_prepared",
    "default_cache_dir",
    "download_sms_spam",
    "drop_duplicates",
    "extract_member",
    "length_stats",
    "load_prepared",
    "load_source",
    "prepare_data",
    "prepare_from_args",
    "read_hub_dataset",
    "read_labelled_file",
    "resolve_model_source",
    "save_prepared",
    "sms_spam_path",
    "split_sizes",
    "stratified_split",
    "tokenize_split",
    "undersample",
    "vocab_fingerprint",
]


def __getattr__(name: str):
    if name in __all__:
        from scratchgpt.data import prepare

        return getattr(prepare, name)
    raise AttributeError(f"module 'scratchgpt.data' has no attribute {name!r}")
