"""The book's GPT-2 layers (chapter 4) in plain torch: attention, MLP, block, masks and pooling.

One place for the model's computation. ``modeling_scratchgpt.py`` wraps these layers as
transformers models (``PreTrainedModel``, generation, losses); the library's inference-only
classifier (``scratchgpt.inference.light``) runs the very same classes without importing
transformers, which costs seconds of start-up. So this file imports only the standard library
and torch. It ships to the Hub beside ``modeling_scratchgpt.py``, which imports it relatively
(transformers copies relatively imported files with the custom code).

``config`` below is a ``ScratchGPTConfig`` or any object with its fields (``emb_dim``,
``n_heads``, ``qkv_bias``, ``drop_rate``, ``layer_norm_eps``; attention also reads
``_attn_implementation``, "sdpa" when absent). A KV ``cache`` is anything with transformers'
``Cache.update(key, value, layer_idx)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ScratchGPTAttention(nn.Module):
    """Causal multi-head self-attention: ``scaled_dot_product_attention`` by default, an eager
    softmax(QK^T)V when ``config._attn_implementation == "eager"`` or when the attention weights
    are asked for (SDPA never materialises them)."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.config = config
        self.n_heads = config.n_heads
        self.head_dim = config.emb_dim // config.n_heads
        self.drop_rate = config.drop_rate
        self.layer_idx = layer_idx
        self.qkv = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.emb_dim, config.emb_dim)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        cache=None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, E) -> (B, T, E), and the (B, nh, T, past + T) weights when asked for."""
        batch, seq_len, emb_dim = x.shape
        # (B, T, 3E) -> 3 x (B, nh, T, hs)
        q, k, v = (
            self.qkv(x).view(batch, seq_len, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        )
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, nh, past + T, hs)
        attn_mask = fit_mask_to_keys(attn_mask, k.shape[-2])
        if output_attentions or getattr(self.config, "_attn_implementation", None) == "eager":
            y, weights = self._eager(q, k, v, attn_mask, is_causal)
        else:
            y, weights = self._sdpa(q, k, v, attn_mask, is_causal), None
        y = y.transpose(1, 2).reshape(batch, seq_len, emb_dim)  # (B, T, E)
        return self.out_proj(y), weights

    def forward_at(
        self, x: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Attention output at one query position per row, ``positions`` (B,): (B, E).

        The same attention as ``forward``, run on one query row: keys and values still come
        from every token, but the output projection (and, in the block, the MLP) run on a
        single token instead of T. ``qkv`` is called as a module on every token (its query part
        for all T costs ~1% of a forward pass): an adapter or otherwise wrapped linear (LoRA,
        DoRA, ...) is then used exactly as in ``forward``, with its gradients.
        """
        batch, seq_len, emb_dim = x.shape
        rows = torch.arange(batch, device=x.device)
        qkv = self.qkv(x).view(batch, seq_len, 3, self.n_heads, self.head_dim)
        q = qkv[rows, positions, 0][:, :, None]  # (B, nh, 1, hs)
        k, v = qkv[:, :, 1:].permute(2, 0, 3, 1, 4)  # 2 x (B, nh, T, hs)
        keep = keep_mask(positions[:, None, None], seq_len, attention_mask)  # (B, 1, T)
        y = self._sdpa(q, k, v, keep[:, None], is_causal=False)  # (B, nh, 1, hs)
        return self.out_proj(y.reshape(batch, emb_dim))

    def _sdpa(self, q, k, v, attn_mask, is_causal) -> torch.Tensor:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self._dropout_p(), is_causal=is_causal
        )  # (B, nh, T, hs)

    def _eager(self, q, k, v, attn_mask, is_causal) -> tuple[torch.Tensor, torch.Tensor]:
        """The textbook computation (the book's chapter 3), returning the attention weights."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, nh, T, past + T)
        if is_causal:
            query_len, key_len = scores.shape[-2:]
            query_pos = query_positions(key_len - query_len, query_len, q.device)
            attn_mask = keep_mask(query_pos, key_len, None)  # (T, past + T)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
        elif attn_mask is not None:
            scores = scores + attn_mask  # an additive float mask, as transformers builds them
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        weights = F.dropout(weights, p=self._dropout_p())
        return weights @ v, weights  # (B, nh, T, hs), (B, nh, T, past + T)

    def _dropout_p(self) -> float:
        return self.drop_rate if self.training else 0.0


class ScratchGPTFeedForward(nn.Module):
    """The 4x-wide MLP with GPT-2's tanh approximation of GELU."""

    def __init__(self, config):
        super().__init__()
        self.fc = nn.Linear(config.emb_dim, 4 * config.emb_dim)
        self.proj = nn.Linear(4 * config.emb_dim, config.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + att(norm1(x)), then x + ff(norm2(x))."""

    def __init__(self, config, layer_idx: int = 0):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.att = ScratchGPTAttention(config, layer_idx)
        self.norm2 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_eps)
        self.ff = ScratchGPTFeedForward(config)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = True,
        cache=None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.att(self.norm1(x), attn_mask, is_causal, cache, output_attentions)
        x = x + self.drop_shortcut(attended)
        return x + self.drop_shortcut(self.ff(self.norm2(x))), weights

    def forward_at(
        self, x: torch.Tensor, positions: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The block's output at one position per row (B, E): the same values ``forward``
        gives there, for about a sixth of the work when only that token is read."""
        x_at = x[torch.arange(x.shape[0], device=x.device), positions]  # (B, E)
        x_at = x_at + self.drop_shortcut(
            self.att.forward_at(self.norm1(x), positions, attention_mask)
        )
        return x_at + self.drop_shortcut(self.ff(self.norm2(x_at)))


# ---------------------------------------------------------------------------- masks, positions


def is_tracing() -> bool:
    """Inside torch.compile / torch.export, where a Python branch on tensor values is a graph
    break (compile) or an error (export)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def keep_mask(
    query_pos: torch.Tensor, key_len: int, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Which keys each query may read: ``query_pos`` (..., T, 1) against keys 0..K-1.

    Causal (keys up to the query's position), minus padding keys (``attention_mask`` (B, K)),
    plus always the query's own position, so a padded query row is never fully masked (which
    would give NaN). (..., T, K) without a mask, (B, T, K) with one.
    """
    key_pos = torch.arange(key_len, device=query_pos.device)
    keep = key_pos <= query_pos
    if attention_mask is None:
        return keep
    return (keep & attention_mask[:, None, :].bool()) | (key_pos == query_pos)


def query_positions(past_len, query_len: int, device) -> torch.Tensor:
    return (torch.arange(query_len, device=device) + past_len)[:, None]  # (T, 1)


def fit_mask_to_keys(attn_mask: torch.Tensor | None, key_len: int) -> torch.Tensor | None:
    """A static (pre-allocated) cache returns more keys than were written: the slots beyond
    the mask are empty and stay masked out; a longer 4D mask (transformers builds them for the
    whole static cache) is cut to the keys."""
    if attn_mask is None or attn_mask.shape[-1] == key_len:
        return attn_mask
    if attn_mask.shape[-1] > key_len:
        return attn_mask[..., :key_len]
    fill = False if attn_mask.dtype == torch.bool else torch.finfo(attn_mask.dtype).min
    return F.pad(attn_mask, (0, key_len - attn_mask.shape[-1]), value=fill)


def build_attention_mask(
    attention_mask: torch.Tensor | None,
    query_len: int,
    past_len: int | torch.Tensor,
    device: torch.device | None = None,
) -> tuple[torch.Tensor | None, bool]:
    """Return ``(attn_mask, is_causal)`` for the attention of ``query_len`` new tokens.

    ``attention_mask`` is the usual (B, past + T) 1/0 padding mask, or a ready 4D mask (as
    ``generate`` builds for static caches) which is used as given. Without padding the kernel's
    built-in causal mask is used; seeing that needs a look at the mask's values, which is
    skipped under torch.compile/export (no data-dependent branch there). Otherwise a boolean
    (B, 1, T, past + T) mask combines causality with padding, so every position (a padded one
    too) reads the same keys whatever padding surrounds the message. A padded query row also
    sees its own position, so no row is fully masked (which would give NaN). ``device`` is where
    a mask is built when there is no padding mask to take it from (the hidden states' device).
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask, False
    if attention_mask is None and isinstance(past_len, int) and past_len == 0:
        return None, query_len > 1
    if attention_mask is None and query_len == 1:
        return None, False  # one new token may attend to everything cached
    if attention_mask is not None and not is_tracing() and bool(attention_mask.all()):
        return build_attention_mask(None, query_len, past_len, device)  # only causality
    if attention_mask is None:  # a cache and several new tokens: causality with an offset
        query_pos = query_positions(past_len, query_len, device)
        return keep_mask(query_pos, past_len + query_len, None)[None, None], False
    query_pos = query_positions(past_len, query_len, attention_mask.device)
    keep = keep_mask(query_pos, attention_mask.shape[-1], attention_mask)  # (B, T, K)
    return keep[:, None], False  # (B, 1, T, K)


def mask_for_real_tokens(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The padding mask blocks need when only the real tokens' states are read (pooling, the
    frozen-prefix cache): none for a right-padded or unpadded batch, where causal attention
    already keeps every real token from the padding after it. The kernel's built-in causal
    mask is cheaper than a materialised one (measured on CPU: attention forward + backward of
    an SMS batch, 32 x 60 tokens, dropout 0.1, 34 -> 27 ms). Left padding, a 4D mask and
    tracing (no data-dependent branch there) keep the mask."""
    if attention_mask is None or attention_mask.dim() != 2 or is_tracing():
        return attention_mask
    if bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all()):
        return None
    return attention_mask


def position_ids_from_mask(
    attention_mask: torch.Tensor | None, query_len: int, past_len: int, device: torch.device
) -> torch.Tensor:
    """Positions count real tokens only, so left padding does not shift a message's positions."""
    if attention_mask is None or attention_mask.dim() != 2:
        return (torch.arange(query_len, device=device) + past_len)[None]  # (1, T)
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp(min=0)[:, -query_len:]  # (B, T)


def run_blocks(
    blocks,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    cache=None,
    all_hidden: list[torch.Tensor] | None = None,
    all_attentions: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run ``blocks`` in order on ``hidden`` (B, T, E). Block inputs are appended to
    ``all_hidden`` and attention weights to ``all_attentions`` when given."""
    past_len = cache.get_seq_length() if cache is not None else 0
    attn_mask, is_causal = build_attention_mask(
        attention_mask, hidden.shape[1], past_len, hidden.device
    )
    for block in blocks:
        if all_hidden is not None:
            all_hidden.append(hidden)
        hidden, weights = block(hidden, attn_mask, is_causal, cache, all_attentions is not None)
        if all_attentions is not None:
            all_attentions.append(weights)
    return hidden


# ----------------------------------------------------------------------------------- pooling


def last_token_positions(
    attention_mask: torch.Tensor | None, batch: int, seq_len: int, device: torch.device
) -> torch.Tensor:
    """Index of each row's last real (mask = 1) token: (B,). Right, left or no padding."""
    if attention_mask is None:
        return torch.full((batch,), seq_len - 1, device=device)
    positions = torch.arange(seq_len, device=device)
    return (positions * attention_mask.long()).argmax(dim=1)


def pool_hidden_states(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str
) -> torch.Tensor:
    """(B, T, E) token states -> (B, E), reading only real (non-padding) tokens.

    "last" takes the last token whose mask is 1: correct for right padding, left padding and
    unpadded batches alike. The book reads position -1, which is a pad token for every
    message shorter than its batch.
    """
    if attention_mask is None:
        return hidden[:, -1] if pooling == "last" else hidden.mean(dim=1)
    if pooling == "mean":
        mask = attention_mask.to(hidden.dtype)  # (B, T)
        return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    batch, seq_len = attention_mask.shape
    last = last_token_positions(attention_mask, batch, seq_len, hidden.device)  # (B,)
    return hidden[torch.arange(batch, device=hidden.device), last]


def pool_through_blocks(
    blocks,
    final_norm: nn.Module,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None,
    pool_mask: torch.Tensor | None,
    pooling: str,
) -> torch.Tensor:
    """Run ``blocks`` on ``hidden`` (B, T, E), the final norm, and pool: (B, E).

    ``attention_mask`` is what the blocks see (reduced by :func:`mask_for_real_tokens`: only
    real tokens are read); ``pool_mask`` marks the real tokens to pool. With "last" pooling only
    one token per message is read after the final block, so that block runs its output
    projection and MLP on that token alone (``forward_at``).
    """
    attention_mask = mask_for_real_tokens(attention_mask)
    if pooling != "last":
        hidden = final_norm(run_blocks(blocks, hidden, attention_mask))
        return pool_hidden_states(hidden, pool_mask, pooling)
    batch, seq_len, _ = hidden.shape
    last = last_token_positions(pool_mask, batch, seq_len, hidden.device)  # (B,)
    if len(blocks) == 0:
        at_last = hidden[torch.arange(batch, device=hidden.device), last]
    else:
        hidden = run_blocks(blocks[:-1], hidden, attention_mask)
        at_last = blocks[-1].forward_at(hidden, last, attention_mask)  # (B, E)
    return final_norm(at_last)
