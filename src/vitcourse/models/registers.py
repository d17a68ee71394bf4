"""Chapter 8: register tokens, and the high-norm "artifact" tokens they remove.

Darcet et al. (2024, "Vision Transformers Need Registers") found that large, well-trained ViTs
(DINOv2, OpenCLIP, DeiT-III) repurpose a few patch tokens, usually on redundant background, to hold
global information. Those tokens have feature norms far above the rest (in DINOv2 ViT-g, above 150 where
typical tokens stay below 100) and draw the CLS token's attention, which makes attention maps noisy. Adding R learnable
*register* tokens, which the model reads and writes but which are thrown away at the output, gives
that computation a place of its own: the outliers disappear. The paper's main models use R = 4.

The registers themselves are an option of ``vitcourse.models.vit.ViT`` (``reg_tokens=R``; token
order cls, registers, patches; with ``no_embed_class=True``, the DINOv2 convention, position
embeddings are added to the patches only). This module has what is needed to *see* the effect:

- ``token_norms``, ``robust_threshold`` and ``find_artifact_tokens``: flag tokens whose norm is an
  outlier;
- ``split_tokens``: cut a (B, T, D) token sequence into CLS, registers and patches;
- ``last_block_attention``: the last block's attention maps, for any timm-style ViT;
- ``plot_norm_histograms`` and ``plot_norm_map``: the figures of the chapter.

The default outlier rule. With m the median and MAD the median absolute deviation of the norms
(over all tokens given, pooled over the batch, as one fixed cut-off for a model),
``threshold = m + k * 1.4826 * MAD`` with ``k = 6``. For Gaussian data 1.4826 * MAD estimates the
standard deviation, so this is "six robust standard deviations above the median"; median and MAD
ignore a few outliers, unlike the mean and standard deviation, which artifacts would inflate. For
clean Gaussian features (dimension 2 to 384, up to 10^5 tokens) the largest norm measured lies at
4.1 to 5.8 robust standard deviations, so k = 6 flags nothing, while DINOv2-style artifacts
(norms several times the typical one) lie far above it.
"""

from __future__ import annotations

import torch

__all__ = [
    "DEFAULT_K",
    "token_norms",
    "robust_threshold",
    "find_artifact_tokens",
    "split_tokens",
    "last_block_attention",
    "plot_norm_histograms",
    "plot_norm_map",
]

DEFAULT_K = 6.0
MAD_TO_STD = 1.4826  # 1 / Phi^-1(3/4): turns a MAD into a standard deviation for Gaussian data


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


def split_tokens(tokens: torch.Tensor, num_registers: int, cls_token: bool = True, num_extra: int = 0) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Cut (B, T, D) tokens ordered [cls, (extra, e.g. dist), registers, patches] into
    ``(cls (B, D) or None, registers (B, R, D), patches (B, N, D))``."""
    start = int(cls_token) + num_extra
    cls = tokens[:, 0] if cls_token else None
    regs = tokens[:, start : start + num_registers]
    return cls, regs, tokens[:, start + num_registers :]


def last_block_attention(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Attention probabilities of the last block, (B, heads, T, T), recomputed from its input.

    Works for any ViT whose blocks have ``norm1`` and ``attn`` with ``qkv`` (Linear to 3 * D,
    laid out as (3, heads, head_dim)) and ``num_heads``, as timm's and the course's: a forward hook
    captures the last block's input, and the attention is softmax(q k^T / sqrt(head_dim)).
    """
    block = model.blocks[-1]
    captured: dict[str, torch.Tensor] = {}
    handle = block.register_forward_pre_hook(lambda mod, args: captured.__setitem__("x", args[0]))
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        handle.remove()
    attn = block.attn
    with torch.no_grad():
        h = block.norm1(captured["x"])
        B, T, D = h.shape
        H = attn.num_heads
        qkv = attn.qkv(h).reshape(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
        if hasattr(attn, "q_norm"):  # identity in plain ViTs
            q, k = attn.q_norm(q), attn.k_norm(k)
        return ((q @ k.transpose(-2, -1)) * (D // H) ** -0.5).softmax(dim=-1)


def plot_norm_histograms(norms_by_name: dict[str, torch.Tensor], threshold: float | None = None, ax=None, bins: int = 50):
    """Overlaid histograms of token norms, one per entry (e.g. {"no registers": n0, "4 registers": n4}).

    Each entry: token features (B, N, D), or norms of any other shape (flattened).

    A vertical line marks ``threshold`` when given. Log-scaled counts, so a handful of outliers stays
    visible next to thousands of ordinary tokens. Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    flat = {name: (token_norms(n) if n.ndim == 3 else n.detach().float()).flatten() for name, n in norms_by_name.items()}
    hi = max(float(n.max()) for n in flat.values())
    edges = torch.linspace(0, hi * 1.02, bins + 1).numpy()
    for name, n in flat.items():
        ax.hist(n.numpy(), bins=edges, alpha=0.55, label=name)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("patch-token norm")
    ax.set_ylabel("tokens")
    ax.legend(frameon=False)
    return ax


def plot_norm_map(norms: torch.Tensor, grid: tuple[int, int], ax=None, title: str | None = None):
    """One image's patch-token norms (N,) drawn on its (h, w) patch grid. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    im = ax.imshow(token_norms(norms.reshape(1, -1)).reshape(grid).numpy(), cmap="magma")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax
