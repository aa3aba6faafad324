"""Where the project finds its shared, read-only data (no internet on the dev machines),
and the permissions of what it writes.

The SMS Spam Collection and the GPT-2 BPE files live in ``../shared/data`` next to the
repository; ``SCRATCHGPT_SHARED_DATA`` points elsewhere. They are read by path, never copied.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA_ENV = "SCRATCHGPT_SHARED_DATA"
CACHE_ENV = "SCRATCHGPT_CACHE"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Largest model.safetensors before a folder's weights are split into shards (save_pretrained's
# format). Here rather than in folder.py, so the convert flags know it without importing torch.
DEFAULT_MAX_SHARD_SIZE = "2GB"
# The model code every model folder carries (``modeling/``, copied by ``save_pretrained``), which
# ``trust_remote_code`` loads: the transformers classes, the torch-only layers they are built
# from (imported relatively), and the config.
MODEL_CODE_FILES = ("configuration_scratchgpt.py", "layers_scratchgpt.py", "modeling_scratchgpt.py")


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


def current_umask() -> int:
    """The process umask. Linux reports it in /proc; elsewhere it can only be read by setting
    it, so it is set straight back (a window of microseconds, as pip does)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode a plain ``mkdir``/``open`` would: 0o777 (folders) or 0o666 (files)
    less the umask, i.e. 0755/0644 under the usual 022.

    ``tempfile.mkdtemp``/``mkstemp`` create 0700/0600 on purpose (private scratch space); a
    model or output folder renamed into place from one must instead look like what
    ``save_pretrained`` writes, readable by the group and others (a shared cache, a web
    server, a Docker image run as another user). Respecting the umask, rather than forcing
    0755/0644, keeps a user's stricter (077) or group-writable (002) choice.
    """
    path = Path(path)
    base = 0o777 if path.is_dir() else 0o666
    os.chmod(path, base & ~current_umask())
