"""Classify without importing transformers: the classifier's own layers in a torch-only shell.

Importing transformers' model code (``PreTrainedModel`` pulls in its loading, distributed and
quantization machinery) takes 2-3 s per process, longer than loading a fine-tuned classifier
and scoring a message. ``classify.py "one message"`` therefore runs ``LightClassifier``: the
layers of ``scratchgpt_modeling.layers_scratchgpt`` (the very classes the transformers model is
built from) under the same parameter names, so the folder's ``model.safetensors`` loads into
it as is. Only the shell -- embeddings in, pooled logits out -- is written here.

It is used only where it is known to compute what the folder's own code computes
(:func:`light_folder_config`): a scratchgpt sequence classifier whose code files are
byte-identical to the ones installed with this library, with full weights in safetensors and
no adapter. Any other folder goes through ``AutoModelForSequenceClassification`` with
``trust_remote_code``. Batches must be right-padded (what ``TextClassifier`` builds).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import torch
from safetensors.torch import load_file
from torch import nn

from scratchgpt.paths import MODEL_CODE_FILES
from scratchgpt.weight_files import check_weights, weight_files
from scratchgpt_modeling.layers_scratchgpt import TransformerBlock, pool_through_blocks

# The one architecture this shell computes; a folder of any other goes through transformers.
ARCHITECTURE = "ScratchGPTForSequenceClassification"
SIZES = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")


class Logits(NamedTuple):
    """What ``model(...).logits`` reads, as on transformers' output classes."""

    logits: torch.Tensor


class LightClassifier(nn.Module):
    """``ScratchGPTForSequenceClassification`` at inference: ``(input_ids, attention_mask)``,
    right-padded (no mask: unpadded), -> ``Logits`` (B, num_labels). No dropout, cache or loss.

    ``config`` is the folder's config.json as attributes (:func:`light_folder_config`).
    """

    def __init__(self, config: SimpleNamespace):
        super().__init__()
        self.config = config
        self.gpt = nn.Module()  # the parameter names of ScratchGPTModel: gpt.tok_emb, ...
        self.gpt.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.gpt.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.gpt.blocks = nn.ModuleList(TransformerBlock(config, i) for i in range(config.n_layers))
        self.gpt.final_norm = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.emb_dim, config.num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> Logits:
        if attention_mask is not None and (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
            raise ValueError("LightClassifier needs right-padded batches (mask 1...1 0...0)")
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.gpt.tok_emb(input_ids) + self.gpt.pos_emb(positions)  # (B, T, E)
        # The blocks see no padding mask: with right padding, causal attention never lets a
        # real token read the padding after it (and the kernel's causal path is the fastest).
        pooled = pool_through_blocks(
            self.gpt.blocks, self.gpt.final_norm, hidden, None, attention_mask, self.config.pooling
        )  # (B, E)
        return Logits(self.classifier(pooled))


def installed_code_dir() -> Path | None:
    """Where the modeling code installed with this library lives (what ``save_pretrained``
    copies), or ``None`` where ``scratchgpt_modeling`` is not installed (then transformers
    loads)."""
    import importlib.util

    spec = importlib.util.find_spec("scratchgpt_modeling")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _same_code(folder: Path) -> bool:
    installed = installed_code_dir()
    if installed is None:
        return False
    try:
        return all(
            (folder / name).read_bytes() == (installed / name).read_bytes()
            for name in MODEL_CODE_FILES
        )
    except OSError:
        return False


def light_folder_config(folder: str | Path) -> SimpleNamespace | None:
    """The folder's config when ``LightClassifier`` computes what its own code does, else
    ``None`` (then transformers loads it)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(config, dict)
        or config.get("model_type") != "scratchgpt"
        or config.get("architectures") != [ARCHITECTURE]
        or config.get("pooling") not in ("last", "mean")
        or (folder / "adapter_config.json").exists()
        or not weight_files(folder)
        or not _same_code(folder)
        or not _buildable(config)
    ):
        return None
    try:
        id2label = {int(i): str(name) for i, name in config["id2label"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return SimpleNamespace(**{**config, "id2label": id2label, "num_labels": len(id2label)})


@contextmanager
def _uninitialised_modules() -> Iterator[None]:
    """Build layers without their random init: the weights come from the file next, and for
    gpt2-small the init alone takes ~0.5 s. (The meta device would also skip it, but building
    an embedding there imports ``torch._dynamo``, ~1.5 s.)"""
    classes = (nn.Linear, nn.Embedding, nn.LayerNorm)
    saved = [cls.reset_parameters for cls in classes]
    try:
        for cls in classes:
            cls.reset_parameters = _no_init
        yield
    finally:
        for cls, reset in zip(classes, saved, strict=True):
            cls.reset_parameters = reset


def _no_init(module: nn.Module) -> None:
    pass


def _buildable(config: dict) -> bool:
    """Sizes the shell can build. It skips the config class's validation, so anything else
    goes through transformers, whose ``ScratchGPTConfig`` names the bad field."""
    try:
        sizes = {name: int(config[name]) for name in SIZES}
        float(config["layer_norm_eps"])
        float(config["drop_rate"])
    except (KeyError, TypeError, ValueError):
        return False
    return min(sizes.values()) > 0 and sizes["emb_dim"] % sizes["n_heads"] == 0


def load_light_classifier(
    folder: str | Path, config: SimpleNamespace, device: str | torch.device | None = None
) -> LightClassifier:
    """The folder's weights in a :class:`LightClassifier`; a damaged file or a tensor of the
    wrong shape raises ``ModelFolderError`` naming it (as the transformers path does)."""
    with _uninitialised_modules():
        model = LightClassifier(config)
    check_weights(folder, model)
    state = {}
    for file in weight_files(folder):
        state.update(load_file(file, device=str(device or "cpu")))
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
