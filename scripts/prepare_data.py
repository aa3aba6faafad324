"""Prepare a tokenized train/validation/test DatasetDict: see ``--help`` and scratchgpt.data."""

import sys

from scratchgpt.data.prepare import main

if __name__ == "__main__":
    sys.exit(main())
