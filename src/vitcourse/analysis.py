"""Looking inside a trained ViT: attention maps, token outputs and high-norm "artifact" tokens.

Works for the course's ``ViT``, the chapters' own models and timm's ViTs alike: anything with
``blocks`` whose elements have ``norm1`` and ``attn`` (a ``qkv`` Linear to 3 * D laid out as
(3, heads, head_dim), and ``num_heads``), and ``forward_features``.

- ``attention_maps`` and ``cls_attention``: attention probabilities, recomputed from each block's
  input (the fused attention of the forward pass never forms them);
- ``block_tokens``: the tokens leaving a block, e.g. the last one before the final norm;
- ``split_tokens``: cut a token sequence into class token, registers and patches;
- ``token_norms``, ``robust_threshold`` and ``find_artifact_tokens``: flag tokens whose norm is an
  outlier (chapter 8, Darcet et al. 2024, "Vision Transformers Need Registers").

The outlier rule. With m the median and MAD the median absolute deviation of the norms (over all
tokens given, pooled over the batch, as one fixed cut-off for a model),
``threshold = m + k * 1.4826 * MAD`` with ``k = 6``. For Gaussian data 1.4826 * MAD estimates the
standard deviation, so this is "six robust standard deviations above the median"; median and MAD
ignore a few outliers, unlike the mean and standard deviation, which artifacts would inflate. For
clean Gaussian features (dimension 2 to 384, up to 10^5 tokens) the largest norm measured lies at
4.1 to 5.8 robust standard deviations, so k = 6 flags nothing, while DINOv2-style artifacts
(norms several times the typical one) lie far above it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "attention_maps", "cls_attention", "block_tokens", "split_tokens",
    "DEFAULT_K", "token_norms", "robust_threshold", "find_artifact_tokens",
]

DEFAULT_K = 6.0
MAD_TO_STD = 1.4826  # 1 / Phi^-1(3/4): turns a MAD into a standard deviation for Gaussian data


def _block_inputs(model: nn.Module, x: torch.Tensor, indices: list[int]) -> dict[int, torch.Tensor]:
    """Run ``model.forward_features(x)`` and capture the input of the blocks ``indices``."""
    blocks = list(model.blocks)
    captured: dict[int, torch.Tensor] = {}
    handles = [blocks[i].register_forward_pre_hook(lambda mod, args, i=i: captured.__setitem__(i, args[0]))
               for i in indices]
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def _attention(block: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) of one block for its input h (B, T, D): (B, heads, T, T)."""
    attn = block.attn
    h = block.norm1(h)
    B, T, D = h.shape
    H = attn.num_heads
    q, k, _ = attn.qkv(h).reshape(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)  # each (B, H, T, D/H)
    if hasattr(attn, "q_norm"):  # timm's optional qk-norm (identity in plain ViTs)
        q, k = attn.q_norm(q), attn.k_norm(k)
    scale = getattr(attn, "scale", (D // H) ** -0.5)
    return ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor, blocks: list[int] | None = None) -> list[torch.Tensor]:
    """Attention probabilities of every block (or of the ``blocks`` given): a list of (B, heads, T, T).

    Each map is recomputed from the block's input, captured by a hook during ``forward_features``.
    Rows (queries) sum to 1 over the keys.
    """
    n = len(model.blocks)
    indices = [i % n for i in (range(n) if blocks is None else blocks)]
    inputs = _block_inputs(model, x, sorted(set(indices)))
    return [_attention(model.blocks[i], inputs[i]) for i in indices]


def cls_attention(model: nn.Module, x: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Attention of the class token to the patches in one block, on the patch grid: (B, heads, h, w).

    images x (B, C, H, W); the prefix tokens (``model.num_prefix_tokens``, 1 if the model does not
    say) are left out, so the map shows patches only.
    """
    attn = attention_maps(model, x, [block])[0]
    P = model.patch_embed.patch_size
    P = P if isinstance(P, int) else P[0]
    h, w = x.shape[-2] // P, x.shape[-1] // P
    prefix = getattr(model, "num_prefix_tokens", 1)
    return attn[:, :, 0, prefix:].reshape(attn.shape[0], attn.shape[1], h, w)


@torch.no_grad()
def block_tokens(model: nn.Module, x: torch.Tensor, block: int = -1) -> torch.Tensor:
    """The tokens leaving one block (the last by default, i.e. before the final norm): (B, T, D)."""
    captured: dict[str, torch.Tensor] = {}
    handle = list(model.blocks)[block].register_forward_hook(lambda mod, args, out: captured.__setitem__("t", out))
    try:
        model.forward_features(x)
    finally:
        handle.remove()
    return captured["t"]


def split_tokens(tokens: torch.Tensor, num_registers: int, class_token: bool = True,
                 num_extra: int = 0) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Cut (B, T, D) tokens ordered [cls, (extra, e.g. dist), registers, patches] into
    ``(cls (B, D) or None, registers (B, R, D), patches (B, N, D))``."""
    start = int(class_token) + num_extra
    cls = tokens[:, 0] if class_token else None
    return cls, tokens[:, start:start + num_registers], tokens[:, start + num_registers:]


def token_norms(features: torch.Tensor) -> torch.Tensor:
    """L2 norm of each token: (B, N, D) -> (B, N). A (B, N) tensor is taken as norms already."""
    if features.ndim == 3:
        return features.detach().float().norm(dim=-1)
    if features.ndim == 2:
        return features.detach().float()
    raise ValueError(f"expected token features (B, N, D) or norms (B, N), got shape {tuple(features.shape)}")


def robust_threshold(norms: torch.Tensor, k: float = DEFAULT_K) -> float:
    """``median + k * 1.4826 * MAD`` of all the norms given (any shape), as a float.

    Medians are ``torch.median``'s: for an even count, the lower of the two middle values.
    """
    flat = norms.detach().float().flatten()
    if flat.numel() == 0:
        raise ValueError("no norms given: cannot estimate a threshold from an empty tensor.")
    med = flat.median()
    mad = (flat - med).abs().median()
    return float(med + k * MAD_TO_STD * mad)


def find_artifact_tokens(features: torch.Tensor, threshold: float | None = None, k: float = DEFAULT_K) -> torch.Tensor:
    """Flag tokens with outlying (high) norms.

    features: patch tokens (B, N, D), or their norms (B, N). Pass patch tokens only: CLS and
    registers are expected to differ from patches.
    threshold: an absolute norm cut-off; ``None`` uses ``robust_threshold(norms, k)`` (module docstring).
    Returns a bool mask (B, N), True where the norm is above the threshold.
    """
    norms = token_norms(features)
    if threshold is None:
        threshold = robust_threshold(norms, k)
    return norms > threshold
