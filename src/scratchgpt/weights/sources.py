"""Read GPT-2 weights of each supported format into scratchgpt's layout, shape-checked.

- ``openai``: OpenAI's TensorFlow checkpoint folder (``hparams.json``, ``model.ckpt.*``), read
  without TensorFlow by :mod:`scratchgpt.weights.tf_checkpoint`;
- ``hf``: a transformers GPT-2 folder (``config.json`` + ``model.safetensors`` [sharded] or
  ``pytorch_model.bin``), Conv1D weights stored ``[in, out]``, keys with or without
  ``transformer.``;
- ``book``: a ``torch.save(model.state_dict())`` file of the book's ``GPTModel``; one whose
  ``out_head`` has a few outputs and a bias is a fine-tuned classifier.

``read_source(path)`` detects the format and returns :class:`SourceWeights`. Every tensor is
checked against the shape the architecture implies; errors name the file, the variable and
both shapes. Inputs are memory-mapped and each tensor is copied once, transposed where the
format needs it, so peak memory stays near one copy of the weights.
"""

from __future__ import annotations

import abc
import json
import os
import re
import warnings
from collections.abc import Callable, KeysView
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from scratchgpt.download import OPENAI_GPT2_SIZES
from scratchgpt.files import UsageError
from scratchgpt.tokenizer import find_tokenizer_files
from scratchgpt.weights.tf_checkpoint import TFCheckpoint, resolve_prefix
from scratchgpt_modeling.configuration_scratchgpt import PRESETS

SourceFormat = Literal["openai", "hf", "book"]
SOURCE_FORMATS: tuple[str, ...] = ("openai", "hf", "book")
SIZE_TO_PRESET = dict(zip(OPENAI_GPT2_SIZES, PRESETS, strict=True))
# The book's state_dict does not record the head count; OpenAI's sizes fix it per width.
HEADS_BY_WIDTH = {preset["emb_dim"]: preset["n_heads"] for preset in PRESETS.values()}
# transformers GPT-2 buffers that are not weights (old checkpoints store the causal mask).
HF_IGNORED = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$")
BOOK_IGNORED = re.compile(r"^trf_blocks\.\d+\.att\.mask$")


class ConversionError(UsageError):  # a ValueError: one line at the command line
    """The input cannot be converted; the message names the file, variable and values."""


@dataclass
class SourceWeights:
    """Everything read from a source, already in scratchgpt's layout."""

    arch: dict[str, int | bool | float]
    backbone: dict[str, torch.Tensor]  # ScratchGPTModel keys (no "gpt." prefix)
    tokenizer_dir: Path | None  # the source's own tokenizer files, if complete
    out_head: torch.Tensor | None = None  # an LM head differing from the token embedding
    classifier: tuple[torch.Tensor, torch.Tensor] | None = None  # fine-tuned (weight, bias)
    id2label: dict[int, str] | None = None


# --- format detection -----------------------------------------------------------------------


def detect_format(path: str | os.PathLike[str]) -> SourceFormat:
    """Tell which kind of GPT-2 weights ``path`` holds, from the files present."""
    path = Path(path)
    if not path.exists():
        raise ConversionError(f"input {path} does not exist")
    if path.is_file():
        if path.suffix in (".pth", ".pt"):
            return "book"
        if path.name.endswith(".index"):
            return "openai"
    elif (path / "hparams.json").is_file() or (path / "checkpoint").is_file():
        return "openai"
    elif (path / "config.json").is_file():
        return "hf"
    raise ConversionError(
        f"cannot tell what {path} holds: expected an OpenAI checkpoint folder (hparams.json + "
        "model.ckpt.index), a transformers GPT-2 folder (config.json + model.safetensors or "
        "pytorch_model.bin) or a book state_dict file (.pth/.pt); name it with --from"
    )


# --- tensor sources with shape checks -------------------------------------------------------


class _Source(abc.ABC):
    """Named tensors of one input; ``get`` checks shapes and records what was used."""

    def __init__(self, origin: str, hint: str) -> None:
        self.origin = origin  # the file(s) named in errors
        self.hint = hint  # what the expected shapes were derived from
        self.used: set[str] = set()

    @abc.abstractmethod
    def names(self) -> KeysView[str]:
        """Implemented per source format."""

    @abc.abstractmethod
    def shape(self, name: str) -> tuple[int, ...]:
        """Implemented per source format."""

    @abc.abstractmethod
    def load(self, name: str, transpose: bool) -> torch.Tensor:
        """An owned fp32 copy (see :func:`_owned`)."""

    def get(self, name: str, shape: tuple[int, ...], transpose: bool = False) -> torch.Tensor:
        if name not in self.names():
            raise ConversionError(f"{self.origin}: variable {name!r} is missing")
        actual = tuple(self.shape(name))
        if actual != tuple(shape):
            raise ConversionError(
                f"{self.origin}: variable {name!r} has shape {actual}, but {self.hint} "
                f"implies {tuple(shape)}"
            )
        self.used.add(name)
        return self.load(name, transpose)

    def check_all_used(self, ignored: re.Pattern[str] | None = None) -> None:
        """Unread variables mean a different architecture: refuse rather than drop them."""
        extra = sorted(n for n in self.names() - self.used if not (ignored and ignored.search(n)))
        if extra:
            raise ConversionError(
                f"{self.origin}: {len(extra)} unexpected variable(s) for {self.hint}, e.g. "
                f"{extra[:5]}; is this a GPT-2 checkpoint?"
            )


def _owned(tensor: torch.Tensor, transpose: bool) -> torch.Tensor:
    """One copy that casts to fp32, lays out contiguously and detaches from the file.

    Model folders hold fp32 (commands cast for scoring: ``scratchgpt.precision``).
    ``transpose`` turns a Conv1D weight [(1,) in, out] into nn.Linear's [out, in]; torch's
    strided copy does that about 10x faster than numpy's, which dominated the conversion time.
    """
    if transpose:
        tensor = tensor.reshape(tensor.shape[-2:]).T
    return torch.empty(tensor.shape, dtype=torch.float32).copy_(tensor)


def _from_mapped(array: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        # A read-only view of the memory-mapped file: only ever read, then copied.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class _TFSource(_Source):
    def __init__(self, ckpt: TFCheckpoint, hint: str) -> None:
        super().__init__(f"{ckpt.prefix}.index", hint)
        self.ckpt = ckpt

    def names(self) -> KeysView[str]:
        return self.ckpt.entries.keys()

    def shape(self, name: str) -> tuple[int, ...]:
        return self.ckpt.shape(name)

    def load(self, name: str, transpose: bool) -> torch.Tensor:
        tensor = _owned(_from_mapped(self.ckpt.read(name)), transpose)
        self.ckpt.release(name)
        return tensor


class _TorchSource(_Source):
    """A mapping of torch tensors (a state_dict, or lazily opened safetensors files)."""

    def __init__(
        self,
        origin: str,
        hint: str,
        shapes: dict[str, tuple[int, ...]],
        loader: Callable[[str], torch.Tensor],
    ) -> None:
        super().__init__(origin, hint)
        self._shapes = shapes
        self._loader = loader

    def names(self) -> KeysView[str]:
        return self._shapes.keys()

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def load(self, name: str, transpose: bool) -> torch.Tensor:
        return _owned(self._loader(name), transpose)


# --- layer layouts --------------------------------------------------------------------------


def _block_plan(prefix: str, e: int) -> list[tuple[str, str, tuple[int, ...], bool]]:
    """(our key, their suffix, their shape, Conv1D?) for OpenAI/transformers blocks.

    ``prefix`` "openai" gives TF names (``ln_1/g``), "hf" transformers names (``ln_1.weight``).
    """
    conv = (1,) if prefix == "openai" else ()
    rows = [
        ("norm1.weight", "ln_1/g", (e,), False),
        ("norm1.bias", "ln_1/b", (e,), False),
        ("att.qkv.weight", "attn/c_attn/w", (*conv, e, 3 * e), True),
        ("att.qkv.bias", "attn/c_attn/b", (3 * e,), False),
        ("att.out_proj.weight", "attn/c_proj/w", (*conv, e, e), True),
        ("att.out_proj.bias", "attn/c_proj/b", (e,), False),
        ("norm2.weight", "ln_2/g", (e,), False),
        ("norm2.bias", "ln_2/b", (e,), False),
        ("ff.fc.weight", "mlp/c_fc/w", (*conv, e, 4 * e), True),
        ("ff.fc.bias", "mlp/c_fc/b", (4 * e,), False),
        ("ff.proj.weight", "mlp/c_proj/w", (*conv, 4 * e, e), True),
        ("ff.proj.bias", "mlp/c_proj/b", (e,), False),
    ]
    if prefix == "openai":
        return rows
    hf_suffix = {"g": "weight", "b": "bias", "w": "weight"}
    return [
        (ours, ".".join(theirs.split("/")[:-1] + [hf_suffix[theirs[-1]]]), shape, conv_)
        for ours, theirs, shape, conv_ in rows
    ]


def _read_gpt2_layout(
    src: _Source, arch: dict, fmt: str, progress: bool
) -> dict[str, torch.Tensor]:
    """Backbone from OpenAI (``model/h0/ln_1/g``) or transformers (``h.0.ln_1.weight``) names."""
    e, v, c = arch["emb_dim"], arch["vocab_size"], arch["context_length"]
    ln_f = "model/ln_f/" if fmt == "openai" else "ln_f."
    wte, wpe = ("model/wte", "model/wpe") if fmt == "openai" else ("wte.weight", "wpe.weight")
    state = {"tok_emb.weight": src.get(wte, (v, e)), "pos_emb.weight": src.get(wpe, (c, e))}
    plan = _block_plan(fmt, e)
    for i in tqdm(range(arch["n_layers"]), desc="converting blocks", disable=not progress):
        block = f"model/h{i}/" if fmt == "openai" else f"h.{i}."
        for ours, theirs, shape, conv in plan:
            state[f"blocks.{i}.{ours}"] = src.get(block + theirs, shape, transpose=conv)
    g, b = ("g", "b") if fmt == "openai" else ("weight", "bias")
    state["final_norm.weight"] = src.get(f"{ln_f}{g}", (e,))
    state["final_norm.bias"] = src.get(f"{ln_f}{b}", (e,))
    return state


# --- readers per format ---------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConversionError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path} is not valid JSON: {err}") from err


def _require(mapping: dict, key: str, path: Path) -> int:
    value = mapping.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConversionError(f"{path}: {key} must be a positive integer, got {value!r}")
    return value


def read_openai(folder: Path, progress: bool = True) -> SourceWeights:
    """OpenAI's TF checkpoint folder -> weights (shapes checked against ``hparams.json``)."""
    folder = folder if folder.is_dir() else folder.parent
    hparams_path = folder / "hparams.json"
    hp = _read_json(hparams_path, "OpenAI hyper-parameter file")
    arch = {
        "vocab_size": _require(hp, "n_vocab", hparams_path),
        "context_length": _require(hp, "n_ctx", hparams_path),
        "emb_dim": _require(hp, "n_embd", hparams_path),
        "n_heads": _require(hp, "n_head", hparams_path),
        "n_layers": _require(hp, "n_layer", hparams_path),
        "qkv_bias": True,
    }
    hint = f"{hparams_path} ({', '.join(f'{k}={v}' for k, v in hp.items())})"
    with TFCheckpoint(resolve_prefix(folder)) as ckpt:
        src = _TFSource(ckpt, hint)
        backbone = _read_gpt2_layout(src, arch, "openai", progress)
        src.check_all_used()
    return SourceWeights(arch, backbone, _tokenizer_in(folder))


def _hf_tensors(
    folder: Path,
) -> tuple[str, dict[str, tuple[int, ...]], Callable[[str], torch.Tensor]]:
    """(origin, shapes, loader) over the folder's safetensors shards or pytorch_model.bin."""
    from safetensors import SafetensorError, safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(_read_json(index, "safetensors index")["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    elif (folder / "pytorch_model.bin").is_file():
        state = _torch_load(folder / "pytorch_model.bin")
        return str(folder / "pytorch_model.bin"), _shapes(state), state.__getitem__
    else:
        raise ConversionError(
            f"{folder} has no weights: expected model.safetensors, model.safetensors.index.json "
            "or pytorch_model.bin"
        )
    handles, owner = {}, {}
    for name in files:
        if not (folder / name).is_file():
            raise ConversionError(f"safetensors shard {folder / name} does not exist")
        try:
            handles[name] = safe_open(folder / name, framework="pt")
        except (SafetensorError, OSError) as err:
            raise ConversionError(
                f"{folder / name} is not a readable safetensors file: {err}"
            ) from err
        owner.update({key: name for key in handles[name].keys()})  # noqa: SIM118 (not a dict)
    shapes = {key: tuple(handles[f].get_slice(key).get_shape()) for key, f in owner.items()}
    return str(folder / files[0]), shapes, lambda key: handles[owner[key]].get_tensor(key)


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def _strip_prefix(shapes: dict, loader: Callable, prefix: str) -> tuple[dict, Callable]:
    if not any(key.startswith(prefix) for key in shapes):
        return shapes, loader
    stripped = {key.removeprefix(prefix): shape for key, shape in shapes.items()}
    originals = {key.removeprefix(prefix): key for key in shapes}
    return stripped, lambda key: loader(originals[key])


def read_hf(folder: Path, progress: bool = True) -> SourceWeights:
    """A transformers GPT-2 folder -> weights (shapes checked against its ``config.json``)."""
    config_path = folder / "config.json"
    cfg = _read_json(config_path, "transformers config")
    if cfg.get("model_type") != "gpt2":
        raise ConversionError(
            f"{config_path}: model_type is {cfg.get('model_type')!r}; only 'gpt2' folders convert"
        )
    activation = cfg.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ConversionError(
            f"{config_path}: activation_function {activation!r} differs from GPT-2's tanh GELU"
        )
    arch = {
        "vocab_size": _require(cfg, "vocab_size", config_path),
        "context_length": _require(cfg, "n_positions", config_path),
        "emb_dim": _require(cfg, "n_embd", config_path),
        "n_heads": _require(cfg, "n_head", config_path),
        "n_layers": _require(cfg, "n_layer", config_path),
        "qkv_bias": True,
        "layer_norm_eps": float(cfg.get("layer_norm_epsilon", 1e-5)),
    }
    origin, shapes, loader = _hf_tensors(folder)
    shapes, loader = _strip_prefix(shapes, loader, "transformer.")
    keys = ("n_embd", "n_head", "n_layer", "n_positions", "vocab_size")
    src = _TorchSource(
        origin, f"{config_path} ({', '.join(f'{k}={cfg[k]}' for k in keys)})", shapes, loader
    )
    backbone = _read_gpt2_layout(src, arch, "hf", progress)
    weights = SourceWeights(arch, backbone, _tokenizer_in(folder))
    if "lm_head.weight" in shapes:  # tied to wte in OpenAI's GPT-2; stored by some exports
        lm_head = src.get("lm_head.weight", (arch["vocab_size"], arch["emb_dim"]))
        if not torch.equal(lm_head, backbone["tok_emb.weight"]):
            weights.out_head = lm_head  # an untied model stays untied
    if "score.weight" in shapes:  # GPT2ForSequenceClassification: a bias-free head
        num_labels = shapes["score.weight"][0]
        score = src.get("score.weight", (num_labels, arch["emb_dim"]))
        weights.classifier = (score, torch.zeros(num_labels))
        weights.id2label = {int(k): v for k, v in cfg.get("id2label", {}).items()} or None
    src.check_all_used(HF_IGNORED)
    return weights


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load`` restricted to tensors (``weights_only``), memory-mapped when possible."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files from torch < 1.6 cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or unsafe file
        raise ConversionError(f"{path}: cannot load it as a PyTorch state_dict ({err})") from err
    if isinstance(state, dict) and isinstance(state.get("model_state_dict"), dict):
        state = state["model_state_dict"]  # the book's model_and_optimizer.pth
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: expected a state_dict (name -> tensor), got {type(state)}")
    return state


def read_book(path: Path, n_heads: int | None = None, progress: bool = True) -> SourceWeights:
    """The book's ``GPTModel`` state_dict -> weights; the architecture is read off the shapes."""
    state = _torch_load(path)
    for key in ("tok_emb.weight", "pos_emb.weight", "out_head.weight"):
        if key not in state:
            raise ConversionError(f"{path}: variable {key!r} is missing; is this a book GPTModel?")
    v, e = state["tok_emb.weight"].shape
    n_layers = len({k.split(".")[1] for k in state if k.startswith("trf_blocks.")})
    heads = n_heads or HEADS_BY_WIDTH.get(e)
    if heads is None:
        raise ConversionError(
            f"{path}: emb_dim {e} is not an OpenAI GPT-2 width {sorted(HEADS_BY_WIDTH)}; "
            "pass the head count with --n-heads"
        )
    arch = {
        "vocab_size": v,
        "context_length": state["pos_emb.weight"].shape[0],
        "emb_dim": e,
        "n_heads": heads,
        "n_layers": n_layers,
        "qkv_bias": "trf_blocks.0.att.W_query.bias" in state,
    }
    hint = f"the book GPTModel with emb_dim={e}, vocab_size={v}, n_layers={n_layers}"
    src = _TorchSource(str(path), hint, _shapes(state), state.__getitem__)
    backbone = _read_book_layout(src, arch, progress)
    weights = SourceWeights(arch, backbone, None)
    _read_book_head(src, weights)
    src.check_all_used(BOOK_IGNORED)
    return weights


def _read_book_layout(src: _Source, arch: dict, progress: bool) -> dict[str, torch.Tensor]:
    e = arch["emb_dim"]
    state = {
        "tok_emb.weight": src.get("tok_emb.weight", (arch["vocab_size"], e)),
        "pos_emb.weight": src.get("pos_emb.weight", (arch["context_length"], e)),
    }
    for i in tqdm(range(arch["n_layers"]), desc="converting blocks", disable=not progress):
        ours, theirs = f"blocks.{i}.", f"trf_blocks.{i}."
        qkv = ("W_query", "W_key", "W_value")
        # The book keeps three projections; ours is one fused linear, rows ordered q, k, v.
        state[ours + "att.qkv.weight"] = torch.cat(
            [src.get(f"{theirs}att.{n}.weight", (e, e)) for n in qkv]
        )
        if arch["qkv_bias"]:
            state[ours + "att.qkv.bias"] = torch.cat(
                [src.get(f"{theirs}att.{n}.bias", (e,)) for n in qkv]
            )
        for our_name, their_name, shape in (
            ("att.out_proj.weight", "att.out_proj.weight", (e, e)),
            ("att.out_proj.bias", "att.out_proj.bias", (e,)),
            ("ff.fc.weight", "ff.layers.0.weight", (4 * e, e)),
            ("ff.fc.bias", "ff.layers.0.bias", (4 * e,)),
            ("ff.proj.weight", "ff.layers.2.weight", (e, 4 * e)),
            ("ff.proj.bias", "ff.layers.2.bias", (e,)),
            ("norm1.weight", "norm1.scale", (e,)),
            ("norm1.bias", "norm1.shift", (e,)),
            ("norm2.weight", "norm2.scale", (e,)),
            ("norm2.bias", "norm2.shift", (e,)),
        ):
            state[ours + our_name] = src.get(theirs + their_name, shape)
    state["final_norm.weight"] = src.get("final_norm.scale", (e,))
    state["final_norm.bias"] = src.get("final_norm.shift", (e,))
    return state


def _read_book_head(src: _Source, weights: SourceWeights) -> None:
    """An ``out_head`` as wide as the vocabulary is an LM head, a narrow one a classifier."""
    v, e = weights.arch["vocab_size"], weights.arch["emb_dim"]
    outputs = src.shape("out_head.weight")[0]
    head = src.get("out_head.weight", (outputs, e))
    if outputs != v:
        has_bias = "out_head.bias" in src.names()
        bias = src.get("out_head.bias", (outputs,)) if has_bias else torch.zeros(outputs)
        weights.classifier = (head, bias)
    elif not torch.equal(head, weights.backbone["tok_emb.weight"]):
        # Trained from scratch with the book's separate head: keep it (config says untied).
        weights.out_head = head


def _tokenizer_in(folder: Path) -> Path | None:
    """``folder`` if it holds a complete tokenizer (vocab.json + merges.txt, transformers 5's
    tokenizer.json alone, or OpenAI's encoder.json + vocab.bpe), else None."""
    try:
        find_tokenizer_files(folder)
    except FileNotFoundError:
        return None
    return folder


def read_source(
    path: str | os.PathLike[str],
    source_format: SourceFormat | None = None,
    *,
    n_heads: int | None = None,
    progress: bool = True,
) -> SourceWeights:
    """Read and shape-check GPT-2 weights of any supported format (auto-detected by default)."""
    path = Path(path)
    fmt = source_format or detect_format(path)
    if fmt not in SOURCE_FORMATS:
        raise ConversionError(f"source format {fmt!r} is unknown; choose one of {SOURCE_FORMATS}")
    if not path.exists():
        raise ConversionError(f"input {path} does not exist")
    if fmt == "openai":
        return read_openai(path, progress)
    if fmt == "hf":
        if not path.is_dir():
            raise ConversionError(
                f"{path}: a transformers GPT-2 source is a folder with config.json"
            )
        return read_hf(path, progress)
    if path.is_dir():
        raise ConversionError(f"{path}: a book source is a .pth state_dict file, not a folder")
    return read_book(path, n_heads, progress)
