"""Prepare a tokenized train/validation/test DatasetDict: see ``--help`` and scratchgpt.data."""

from scratchgpt.cli import prepare_data_main  # parses the flags before torch is imported

if __name__ == "__main__":
    raise SystemExit(prepare_data_main())
