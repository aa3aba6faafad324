"""Configuration of the from-scratch GPT-2: the book's ``GPT_CONFIG_124M`` as a transformers config.

This file ships to the Hugging Face Hub next to ``config.json`` and is loaded with
``trust_remote_code=True``: it may import only the standard library, torch and transformers.
"""

from __future__ import annotations

from typing import Literal

from transformers import PreTrainedConfig

# Sizes of OpenAI's four GPT-2 releases; everything else (vocab, context) is shared.
PRESETS: dict[str, dict[str, int]] = {
    "gpt2-small": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},  # 124M
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},  # 355M
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},  # 774M
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},  # 1558M
}
# Shapes no one released weights for, for training from random initialisation. From scratch
# on a few thousand short texts, 124M parameters learn no better than a 4-block model and
# take ~20x longer per step (benchmarks/recipe_search.py); same vocabulary and context.
SCRATCH_PRESETS: dict[str, dict[str, int]] = {
    "gpt2-mini": {"emb_dim": 256, "n_layers": 4, "n_heads": 4},  # 16M, 13M of it embeddings
}
POOLING_CHOICES = ("last", "mean")
GPT2_ENDOFTEXT_ID = 50256


class ScratchGPTConfig(PreTrainedConfig):
    r"""Configuration for :class:`ScratchGPTModel` and its heads.

    Field names follow the book (``emb_dim``, ``n_heads``, ...); the standard transformers
    names (``hidden_size``, ``num_attention_heads``, ``num_hidden_layers``,
    ``max_position_embeddings``) are aliases, so generic code (FSDP policies, generation,
    ``device_map``) finds what it looks for.

    Args:
        vocab_size: Number of token ids (GPT-2: 50257).
        context_length: Longest sequence the learned position embedding covers.
        emb_dim: Width of the residual stream.
        n_heads: Attention heads per block; must divide ``emb_dim``.
        n_layers: Number of transformer blocks.
        drop_rate: Dropout on embeddings, attention weights and residual branches, in [0, 1).
        qkv_bias: Whether the query/key/value projection has a bias (OpenAI's weights do).
        layer_norm_eps: Epsilon of every LayerNorm (GPT-2: 1e-5).
        initializer_range: Std of the normal init of fresh weights.
        pooling: How the classifier turns token states into one vector: ``"last"`` takes the
            last non-padding token (what a causal model has "read" the whole text at),
            ``"mean"`` averages the non-padding tokens.
    """

    model_type = "scratchgpt"
    keys_to_ignore_at_inference = ["past_key_values"]
    attribute_map = {
        "hidden_size": "emb_dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "max_position_embeddings": "context_length",
    }

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    pooling: Literal["last", "mean"] = "last"
    use_cache: bool = True
    pad_token_id: int | None = GPT2_ENDOFTEXT_ID
    bos_token_id: int | None = GPT2_ENDOFTEXT_ID
    eos_token_id: int | list[int] | None = GPT2_ENDOFTEXT_ID
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self) -> None:
        """Raise ``ValueError`` naming the first invalid field and its value."""
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"ScratchGPTConfig.{name} must be a positive integer, got {value!r}"
                )
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"ScratchGPTConfig.emb_dim ({self.emb_dim}) must be divisible by "
                f"n_heads ({self.n_heads})"
            )
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(
                f"ScratchGPTConfig.drop_rate must be in [0, 1), got {self.drop_rate!r}"
            )
        if self.pooling not in POOLING_CHOICES:
            raise ValueError(
                f"ScratchGPTConfig.pooling must be one of {POOLING_CHOICES}, got {self.pooling!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ScratchGPTConfig:
        """A config of one of OpenAI's GPT-2 sizes (``gpt2-small`` ... ``gpt2-xl``) or of a
        from-scratch shape (``gpt2-mini``)."""
        shapes = {**PRESETS, **SCRATCH_PRESETS}
        if name not in shapes:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(shapes)}")
        return cls(**{**shapes[name], **overrides})


__all__ = ["PRESETS", "SCRATCH_PRESETS", "ScratchGPTConfig"]
