"""Chapter 8: register tokens, and the high-norm "artifact" tokens they remove.

Darcet et al. (2024, "Vision Transformers Need Registers") found that large, well-trained ViTs
(DINOv2, OpenCLIP, DeiT-III) repurpose a few patch tokens, usually on redundant background, to hold
global information. Those tokens have feature norms far above the rest (in DINOv2 ViT-g, above 150
where typical tokens stay below 100) and draw the class token's attention, which makes attention maps
noisy. Adding R learnable *register* tokens, which the model reads and writes but which are thrown
away at the output, gives that computation a place of its own: the outliers disappear. The paper's
main models use R = 4.

The registers themselves are an option of ``vitcourse.models.vit.ViT`` (``num_registers=R``; token
order cls, registers, patches, built by ``add_prefix_tokens``; with ``no_embed_class=True``, timm's layout
for DINOv2 checkpoints, position embeddings are added to the patches only, the class token's own row
folded into the class token). This module holds the other
graded pieces of the chapter:

- ``split_tokens``: cut a (B, T, D) token sequence into class token, registers and patches;
- ``token_norms``, ``robust_threshold`` and ``find_artifact_tokens``: flag tokens whose norm is an
  outlier;
- ``attention_shares``: how the class token's attention divides between itself, the registers, ink and
  background patches.

Attention maps and the tokens leaving a block are in ``vitcourse.analysis``, the figures in
``vitcourse.viz`` (``plot_norm_histograms``, ``plot_norm_map``).

The outlier rule. With m the median and MAD the median absolute deviation of the norms (over all
tokens given, pooled over the batch, as one fixed cut-off for a model),
``threshold = m + k * 1.4826 * MAD`` with ``k = 6``. For Gaussian data 1.4826 * MAD estimates the
standard deviation, so this is "six robust standard deviations above the median"; median and MAD
ignore a few outliers, unlike the mean and standard deviation, which artifacts would inflate. In clean
Gaussian features of a ViT's width the largest norm stays below 5 robust standard deviations
(``benchmarks/08_registers.py --clean`` measures it), so k = 6 flags nothing there, while DINOv2-style
artifacts (norms several times the typical one) lie far above it.
"""

from __future__ import annotations

import torch

__all__ = ["DEFAULT_K", "split_tokens", "token_norms", "robust_threshold", "find_artifact_tokens", "attention_shares"]

DEFAULT_K = 6.0
MAD_TO_STD = 1.4826  # 1 / Phi^-1(3/4): turns a MAD into a standard deviation for Gaussian data


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
    raise ValueError(  # not graded: the exercise takes features (B, N, D) or norms (B, N) only
        f"expected token features (B, N, D) or norms (B, N), got shape {tuple(features.shape)}")


def robust_threshold(norms: torch.Tensor, k: float = DEFAULT_K) -> float:
    """``median + k * 1.4826 * MAD`` of all the norms given (any shape), as a float.

    Medians are ``torch.median``'s: for an even count, the lower of the two middle values.
    """
    flat = norms.detach().float().flatten()
    if flat.numel() == 0:  # not graded: the exercise always gives tokens
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


def attention_shares(attn: torch.Tensor, num_registers: int, ink: torch.Tensor) -> torch.Tensor:
    """Where the class token looks: (B, 4) shares of its attention, averaged over heads, on
    [itself, the registers, ink patches, background patches] (each row sums to 1).

    attn: one block's weights (B, heads, T, T), T = 1 + R + N, rows the reading tokens; ink: (B, N) bool.
    """
    row = attn.mean(dim=1)[:, 0]  # (B, T): the class token's row
    patches = row[:, 1 + num_registers:]  # (B, N)
    ink = ink.to(patches.dtype)
    return torch.stack([row[:, 0], row[:, 1:1 + num_registers].sum(-1), (patches * ink).sum(-1),
                        (patches * (1 - ink)).sum(-1)], dim=-1)
