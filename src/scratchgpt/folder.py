"""The model folder: the one currency every step reads and writes, and exactly what goes to the Hub.

A complete folder holds ``config.json`` (with a four-entry ``auto_map``), ``model.safetensors``
(sharded above ``max_shard_size``), the two modeling files, ``generation_config.json`` for
language models, and the tokenizer files. It is written to a hidden temporary sibling and
renamed into place only when complete, so an interrupted write never looks like a model.
Folders and files get a plain ``mkdir``/``open``'s modes (0755/0644 under umask 022), not the
private 0700/0600 of temporary files.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

from scratchgpt.paths import DEFAULT_MAX_SHARD_SIZE, gpt2_bpe_dir, make_readable
from scratchgpt.tokenizer import find_tokenizer_files, save_tokenizer
from scratchgpt.weight_files import check_weights
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
)

Task = Literal["sequence-classification", "causal-lm", "base"]
TASK_CLASSES: dict[str, type[PreTrainedModel]] = {
    "sequence-classification": ScratchGPTForSequenceClassification,
    "causal-lm": ScratchGPTForCausalLM,
    "base": ScratchGPTModel,
}


def register_auto_classes() -> None:
    """Inside the library the Auto classes know our model without ``trust_remote_code``."""
    AutoConfig.register(ScratchGPTConfig.model_type, ScratchGPTConfig, exist_ok=True)
    AutoModel.register(ScratchGPTConfig, ScratchGPTModel, exist_ok=True)
    AutoModelForCausalLM.register(ScratchGPTConfig, ScratchGPTForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(
        ScratchGPTConfig, ScratchGPTForSequenceClassification, exist_ok=True
    )


register_auto_classes()


@contextlib.contextmanager
def atomic_dir(output_dir: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``output_dir``; on success it replaces ``output_dir``.

    On any exception the temporary folder is removed and ``output_dir`` is left as it was.
    Before the rename every folder and file inside gets the mode a plain ``mkdir``/``open``
    would give (0755/0644 under umask 022): ``mkdtemp`` makes the folder 0700, and
    safetensors >= 0.8 writes ``*.safetensors`` 0600 (through a temporary file; so does
    ``save_pretrained`` itself), which would leave the model unreadable to other users.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        yield tmp
        for path in (tmp, *tmp.rglob("*")):
            if not path.is_symlink():
                make_readable(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if output_dir.exists():
        # Move the old folder aside first so a crash between the two renames loses nothing.
        old = output_dir.with_name(f".{output_dir.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
        output_dir.rename(old)
        tmp.rename(output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(output_dir)


def save_model_folder(
    model: PreTrainedModel,
    output_dir: str | Path,
    tokenizer_source: str | Path | None = None,
    extra_files: dict[str, str | bytes] | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
) -> Path:
    """Write ``model`` as a complete, self-describing model folder (atomically).

    Args:
        model: any scratchgpt model.
        output_dir: destination; replaced if it exists.
        tokenizer_source: folder with the GPT-2 BPE files (vocab.json + merges.txt,
            tokenizer.json, or encoder.json + vocab.bpe; default: the shared GPT-2 files).
        extra_files: more files to put in the folder, name -> text or bytes (metrics, logs).
        max_shard_size: safetensors shard size, as ``save_pretrained`` takes it.
    """
    source = Path(tokenizer_source) if tokenizer_source is not None else gpt2_bpe_dir()
    find_tokenizer_files(source)  # fail before writing anything
    with atomic_dir(output_dir) as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        save_tokenizer(source, tmp, model_max_length=model.config.context_length)
        for name, content in (extra_files or {}).items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(tmp / name, mode) as handle:
                handle.write(content)
    return Path(output_dir)


def load_model_folder(
    folder: str | Path, task: Task = "sequence-classification", **kwargs
) -> PreTrainedModel:
    """Load a model folder with the library's own classes (no remote code needed); damaged or
    mis-shaped weight files raise ``ModelFolderError`` naming the file."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a model folder: it has no config.json")
    model_class = TASK_CLASSES[task]
    shell = None
    if not kwargs:  # overrides (new labels, ...) may change shapes on purpose: files only then
        with torch.device("meta"):
            shell = model_class(ScratchGPTConfig.from_pretrained(folder))
    check_weights(folder, shell)
    return model_class.from_pretrained(folder, **kwargs)


def is_model_folder(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()
