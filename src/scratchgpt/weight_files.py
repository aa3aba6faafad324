"""The safetensors files of a model folder, checked before a load so a damaged one is named.

``from_pretrained`` on a truncated ``model.safetensors`` ends in a ``SafetensorError`` traceback,
and on a tensor of the wrong shape it logs a table and raises a ``RuntimeError`` that names
neither file nor tensor. :func:`check_weights` reads only the files' headers (milliseconds, no
tensor data): each file must be complete, and each tensor must have the shape the model
expects, given a ``meta``-device instance of the class about to load (no memory allocated).
This module imports no model code, so inference does not pay for the library's own classes.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from scratchgpt.files import UsageError

BLOCK = re.compile(r"(^|\.)blocks\.\d+\.")


class ModelFolderError(UsageError):  # a ValueError: one line at the command line
    """A model folder's files cannot make the model its config.json describes."""


def weight_files(folder: str | Path) -> list[Path]:
    """The folder's ``*.safetensors`` files (one, or the shards of an index), sorted."""
    return sorted(Path(folder).glob("*.safetensors"))


def read_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header; a short or foreign file raises
    :class:`ModelFolderError` naming it."""
    try:
        with safe_open(file, framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        size = file.stat().st_size if file.exists() else 0
        raise ModelFolderError(
            f"{file} is damaged (truncated or not a safetensors file, {size:,} bytes): {err}. "
            "Copy or write the model folder again"
        ) from err


def check_weights(
    folder: str | Path,
    model: torch.nn.Module | None = None,
    replaceable: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
) -> list[str]:
    """Raise :class:`ModelFolderError` unless every weight file of ``folder`` is complete and,
    given ``model``, every tensor that ``model`` also has matches its shape.

    Tensors whose names start with one of ``replaceable`` (a classification head being
    replaced on purpose, for other labels) may differ; their names are returned, so the caller
    can say what it re-initialises. Any other mismatch is an error, never a silent re-init.
    Tensors of ``model`` whose names start with one of ``required`` (the head a classifier
    cannot do without) must be in the files: else transformers would initialise them at random.
    """
    expected = {}
    if model is not None:
        expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    replaced, found = [], set()
    for file in weight_files(folder):
        shapes = read_shapes(file)
        found |= set(shapes)
        wrong = [name for name, shape in shapes.items() if expected.get(name, shape) != shape]
        # A block the config does not have: the file was written for more layers.
        if expected:
            wrong += [name for name in shapes if name not in expected and BLOCK.search(name)]
        replaced += [name for name in wrong if name.startswith(replaceable)]
        wrong = [name for name in wrong if not name.startswith(replaceable)]
        if wrong:
            name = wrong[0]
            more = f" (and {len(wrong) - 1} more tensors)" if len(wrong) > 1 else ""
            if name not in expected:
                raise ModelFolderError(
                    f"{file}: tensor {name!r} belongs to no block of the model that "
                    f"{Path(folder) / 'config.json'} describes{more}: the weights were written "
                    "for another config (check n_layers)"
                )
            raise ModelFolderError(
                f"{file}: tensor {name!r} has shape {list(shapes[name])}, but the model that "
                f"{Path(folder) / 'config.json'} describes needs {list(expected[name])}{more}"
            )
    missing = [name for name in expected if name.startswith(required) and name not in found]
    if missing and weight_files(folder):
        raise ModelFolderError(
            f"{folder} has no trained classification head (no tensor {missing[0]!r} in its "
            "weights): it is not a fine-tuned classifier, and its scores would be random. "
            f"Fine-tune it first: scripts/finetune.py --model {folder}"
        )
    return replaced
