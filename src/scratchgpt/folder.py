"""The model folder: the one currency every step reads and writes, and exactly what goes to the Hub.

A complete folder holds ``config.json`` (with a four-entry ``auto_map``), ``model.safetensors``
(sharded above ``max_shard_size``), the two modeling files, ``generation_config.json`` for
language models, and the tokenizer files. It is written to a hidden temporary sibling and
renamed into place only when complete, so an interrupted write never looks like a model.
Folders and files get a plain ``mkdir``/``open``'s modes (0755/0644 under umask 022), not the
private 0700/0600 of temporary files.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from scratchgpt.files import (  # atomic_dir, is_model_folder: re-exported, where callers look
    InputFileError,
    atomic_dir,
    atomic_file,
    resolve_local_model_folder,
)
from scratchgpt.files import (
    is_model_folder as is_model_folder,
)
from scratchgpt.paths import DEFAULT_MAX_SHARD_SIZE, gpt2_bpe_dir
from scratchgpt.tokenizer import find_tokenizer_files, save_tokenizer
from scratchgpt.weight_files import ModelFolderError, check_weights
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
            with atomic_file(tmp / name, "wb" if isinstance(content, bytes) else "w") as handle:
                handle.write(content)
    return Path(output_dir)


# What ``new_head=True`` may re-initialise: the classification head, and nothing else.
HEAD_PREFIXES = ("classifier.",)


def read_folder_config(folder: str | Path, **overrides) -> ScratchGPTConfig:
    """The folder's ``config.json`` (plus ``overrides``) as a config; an unreadable, invalid or
    inconsistent file raises ``InputFileError``/``ModelFolderError`` naming it."""
    path = resolve_local_model_folder(folder) / "config.json"  # also: valid JSON, an object
    try:
        return ScratchGPTConfig.from_pretrained(folder, **overrides)
    except (OSError, ValueError, TypeError, KeyError) as err:
        if isinstance(err, ModelFolderError | InputFileError):
            raise
        message = " ".join(str(err).split())
        raise ModelFolderError(f"{path}: cannot be read as a model config: {message}") from None


def check_model_folder(
    folder: str | Path,
    task: Task = "sequence-classification",
    *,
    new_head: bool = False,
    **config_overrides,
) -> tuple[ScratchGPTConfig, list[str]]:
    """The folder's config (with ``config_overrides``) once every weight file is complete and
    every tensor has the shape that config asks for; returns it with the names of the head
    tensors that ``new_head=True`` lets differ (they will be re-initialised). Reads only the
    files' headers: callers run it before any slow work, then load."""
    config = read_folder_config(folder, **config_overrides)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        shell = TASK_CLASSES[task](config)
    allowed = HEAD_PREFIXES if new_head and task == "sequence-classification" else ()
    return config, check_weights(folder, shell, allowed)


def load_model_folder(
    folder: str | Path,
    task: Task = "sequence-classification",
    *,
    new_head: bool = False,
    **config_overrides,
) -> PreTrainedModel:
    """Load a model folder with the library's own classes (no remote code needed).

    Every tensor must have the shape that the config (with ``config_overrides``) asks for:
    damaged or mis-shaped weight files raise ``ModelFolderError`` naming the file and tensor.
    ``new_head=True`` (other labels than the folder's) allows only the classification head to
    differ; it is then initialised afresh, and a line on stderr names it.
    """
    config, replaced = check_model_folder(folder, task, new_head=new_head, **config_overrides)
    if replaced:
        print(
            f"new classification head for {config.num_labels} labels: {', '.join(replaced)} "
            f"of {folder} re-initialised",
            file=sys.stderr,
        )
    return TASK_CLASSES[task].from_pretrained(
        folder, config=config, ignore_mismatched_sizes=bool(replaced)
    )


def check_folder_weights(auto_class: type, folder: str | Path) -> PretrainedConfig:
    """The folder's config, once its weight files are known to be complete and shaped as that
    config says for ``auto_class`` with the folder's own code; else ``ModelFolderError`` naming
    the file and tensor, instead of a traceback from deep inside ``from_pretrained``."""
    resolve_local_model_folder(folder)  # a folder whose config.json is valid JSON
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        shell = auto_class.from_config(config, trust_remote_code=True)
    head = HEAD_PREFIXES if "SequenceClassification" in auto_class.__name__ else ()
    check_weights(folder, shell, required=head)  # an LM folder has no head: refused, not random
    return config
