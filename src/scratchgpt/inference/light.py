"""Classify without importing transformers: an inference-only, torch-only copy of the classifier.

Importing transformers' model code (``PreTrainedModel`` pulls in its loading, distributed and
quantization machinery) takes 2-3 s per process, longer than loading a fine-tuned classifier
and scoring a message. ``classify.py "one message"`` therefore runs this copy of
``ScratchGPTForSequenceClassification``'s forward pass: the same modules under the same
parameter names, so the folder's ``model.safetensors`` loads into it as is.

It is used only where it is known to compute what the folder's own code computes
(:func:`light_folder_config`): a scratchgpt sequence classifier whose ``modeling_scratchgpt.py``
is byte-identical to the one installed with this library (the code the parity tests in
``tests/test_light.py`` compare against, to 1e-5), with full weights in safetensors and no
adapter. Any other folder goes through ``AutoModelForSequenceClassification`` with
``trust_remote_code``. Batches must be right-padded (what ``TextClassifier`` builds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from scratchgpt.weight_files import check_weights, weight_files

MODELING_FILE = "modeling_scratchgpt.py"
# The one architecture this copy computes; a folder of any other goes through transformers.
ARCHITECTURE = "ScratchGPTForSequenceClassification"


@dataclass(frozen=True)
class LightConfig:
    """The config.json fields the classifier's forward pass and ``TextClassifier`` read."""

    vocab_size: int
    context_length: int
    emb_dim: int
    n_heads: int
    n_layers: int
    qkv_bias: bool
    layer_norm_eps: float
    pooling: str
    id2label: dict[int, str]
    pad_token_id: int | None

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @classmethod
    def from_dict(cls, config: dict) -> LightConfig:
        return cls(
            vocab_size=int(config["vocab_size"]),
            context_length=int(config["context_length"]),
            emb_dim=int(config["emb_dim"]),
            n_heads=int(config["n_heads"]),
            n_layers=int(config["n_layers"]),
            qkv_bias=bool(config["qkv_bias"]),
            layer_norm_eps=float(config["layer_norm_eps"]),
            pooling=str(config["pooling"]),
            id2label={int(i): str(name) for i, name in config["id2label"].items()},
            pad_token_id=config.get("pad_token_id"),
        )


class Logits(NamedTuple):
    """What ``model(...).logits`` reads, as on transformers' output classes."""

    logits: torch.Tensor


# The weights come from the file (``load_state_dict(assign=True)``): initialising them first
# would be wasted work, and building on the meta device instead imports torch._dynamo (~1.5 s).
class Linear(nn.Linear):
    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        pass


class LightAttention(nn.Module):
    def __init__(self, config: LightConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)
        self.out_proj = Linear(config.emb_dim, config.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq_len, emb_dim = x.shape
        head_dim = emb_dim // self.n_heads
        # (B, T, 3E) -> 3 x (B, nh, T, hs)
        q, k, v = self.qkv(x).view(batch, seq_len, 3, self.n_heads, head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.out_proj(y.transpose(1, 2).reshape(batch, seq_len, emb_dim))


class LightFeedForward(nn.Module):
    def __init__(self, config: LightConfig):
        super().__init__()
        self.fc = Linear(config.emb_dim, 4 * config.emb_dim)
        self.proj = Linear(4 * config.emb_dim, config.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class LightBlock(nn.Module):
    def __init__(self, config: LightConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.att = LightAttention(config)
        self.norm2 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.ff = LightFeedForward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.att(self.norm1(x))
        return x + self.ff(self.norm2(x))


class LightGPT(nn.Module):
    def __init__(self, config: LightConfig):
        super().__init__()
        self.tok_emb = Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = Embedding(config.context_length, config.emb_dim)
        self.blocks = nn.ModuleList(LightBlock(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)


class LightClassifier(nn.Module):
    """``ScratchGPTForSequenceClassification`` at inference: ``(input_ids, attention_mask)``,
    right-padded (no mask: unpadded), -> ``Logits`` (B, num_labels). No dropout, cache or loss."""

    def __init__(self, config: LightConfig):
        super().__init__()
        self.config = config
        self.gpt = LightGPT(config)
        self.classifier = Linear(config.emb_dim, config.num_labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> Logits:
        if attention_mask is None:  # unpadded
            attention_mask = torch.ones_like(input_ids)
        if (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
            raise ValueError("LightClassifier needs right-padded batches (mask 1...1 0...0)")
        seq_len = input_ids.shape[1]
        positions = torch.arange(seq_len, device=input_ids.device)
        hidden = self.gpt.tok_emb(input_ids) + self.gpt.pos_emb(positions)  # (B, T, E)
        for block in self.gpt.blocks:
            hidden = block(hidden)  # causal: padding on the right never reaches a real token
        hidden = self.gpt.final_norm(hidden)
        return Logits(self.classifier(pool(hidden, attention_mask, self.config.pooling)))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, T, E) -> (B, E): the last real token, or the mean of the real tokens."""
    mask = attention_mask.to(hidden.dtype)  # (B, T)
    if pooling == "mean":
        return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    last = attention_mask.sum(1).clamp(min=1) - 1  # (B,) right padding: count - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def installed_modeling_code() -> bytes | None:
    """The modeling code installed with this library (what ``save_pretrained`` copies), or
    ``None`` where ``scratchgpt_modeling`` is not installed (then transformers loads)."""
    import importlib.util

    spec = importlib.util.find_spec("scratchgpt_modeling")
    if spec is None or spec.origin is None:
        return None
    return (Path(spec.origin).parent / MODELING_FILE).read_bytes()


def light_folder_config(folder: str | Path) -> LightConfig | None:
    """The folder's config when this copy computes what its own code does, else ``None``."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8-sig"))
        code = (folder / MODELING_FILE).read_bytes()
    except (OSError, ValueError):
        return None
    if (
        config.get("model_type") != "scratchgpt"
        or config.get("architectures") != [ARCHITECTURE]
        or config.get("pooling") not in ("last", "mean")
        or (folder / "adapter_config.json").exists()
        or not weight_files(folder)
        or code != installed_modeling_code()
    ):
        return None
    try:
        return LightConfig.from_dict(config)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def load_light_classifier(
    folder: str | Path, config: LightConfig, device: str | torch.device | None = None
) -> LightClassifier:
    """The folder's weights in a :class:`LightClassifier`; a damaged file or a tensor of the
    wrong shape raises ``ModelFolderError`` naming it (as the transformers path does)."""
    model = LightClassifier(config)  # uninitialised (see ``Linear``): shapes for the check
    check_weights(folder, model)
    state = {}
    for file in weight_files(folder):
        state.update(load_file(file, device=str(device or "cpu")))
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
