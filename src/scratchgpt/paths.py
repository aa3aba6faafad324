"""Where the project finds its shared, read-only data (no internet on the dev machines).

The SMS Spam Collection and the GPT-2 BPE files live in ``../shared/data`` next to the
repository; ``SCRATCHGPT_SHARED_DATA`` points elsewhere. They are read by path, never copied.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA_ENV = "SCRATCHGPT_SHARED_DATA"
CACHE_ENV = "SCRATCHGPT_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The shared data folder: ``$SCRATCHGPT_SHARED_DATA`` or ``<repo>/../shared/data``."""
    override = os.environ.get(SHARED_DATA_ENV)
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


def gpt2_bpe_dir() -> Path:
    """Folder with GPT-2's ``encoder.json`` and ``vocab.bpe`` (OpenAI's names)."""
    return shared_data_dir() / "gpt2_bpe"


def sms_spam_file() -> Path:
    """The UCI ``SMSSpamCollection`` file (``label<TAB>text`` per line)."""
    return shared_data_dir() / "sms_spam_collection" / "SMSSpamCollection"


def cache_dir() -> Path:
    """Downloads, converted presets and tokenized data: ``$SCRATCHGPT_CACHE`` or
    ``~/.cache/scratchgpt``."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "scratchgpt"
