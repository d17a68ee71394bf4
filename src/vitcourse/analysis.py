"""Measurements of models: what they attend to, the tokens they produce, how far information
travels, and what their features are worth. Every chapter measures through this module.

Inside a ViT (the course's ``ViT``, the chapters' own models and timm's ViTs alike: anything with
``blocks`` whose elements have ``norm1`` and ``attn`` (a ``qkv`` Linear to 3 * D laid out as
(3, heads, head_dim), and ``num_heads``), and ``forward_features``):

- ``attention_maps`` and ``cls_attention``: attention probabilities, recomputed from each block's
  input (the fused attention of the forward pass never forms them);
- ``block_tokens``: the tokens leaving a block, e.g. the last one before the final norm (where
  chapter 8 measures token norms; ``vitcourse.models.registers`` finds the outliers);
- ``token_norms``: the L2 norm of every token.

Inside a stack of Swin blocks: ``receptive_field``, the input tokens one output token depends on.

Features: ``features`` (L2-normalised, in eval mode), probed by ``few_shot_accuracy`` and
``knn_accuracy`` (nearest neighbours) or, for image and text embeddings, by ``zero_shot_accuracy`` and
``recall_at_1``; ``entropy`` of probability distributions (DINO's collapse diagnostics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["attention_maps", "cls_attention", "block_tokens", "token_norms", "receptive_field", "features",
           "entropy", "few_shot_accuracy", "knn_accuracy", "zero_shot_accuracy", "recall_at_1"]


# Inside a ViT -------------------------------------------------------------------------------------

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


def token_norms(features: torch.Tensor) -> torch.Tensor:
    """L2 norm of each token: (B, N, D) -> (B, N). A (B, N) tensor is taken as norms already."""
    if features.ndim == 3:
        return features.detach().float().norm(dim=-1)
    if features.ndim == 2:
        return features.detach().float()
    raise ValueError(f"expected token features (B, N, D) or norms (B, N), got shape {tuple(features.shape)}")


# Swin ---------------------------------------------------------------------------------------------

def receptive_field(blocks, size: int, dim: int, point: tuple[int, int] | None = None) -> torch.Tensor:
    """Which input tokens can change one output token of a stack of Swin blocks.

    Runs the blocks (any modules mapping a (1, size, size, dim) map to one of the same shape, such as
    ``vitcourse.models.swin.SwinBlock``) on a seeded random map and back-propagates from the token at
    ``point`` (default: the centre); returns a ``(size, size)`` bool map, True where the gradient is
    nonzero. With alternating shifts the region grows by about one window per side per shifted pair.
    """
    if point is None:
        point = (size // 2, size // 2)
    x = torch.randn(1, size, size, dim, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = x
    for block in blocks:
        y = block(y)
    y[0, point[0], point[1]].sum().backward()
    return x.grad[0].abs().sum(-1) > 0


# Features -----------------------------------------------------------------------------------------

@torch.no_grad()
def features(net: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """L2-normalised features (N, D) of ``net`` on images (N, C, H, W), in eval mode, on the CPU."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    out = torch.cat([net(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])
    net.train(was_training)
    return F.normalize(out, dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each distribution along the last dimension."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)


def few_shot_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                      test_labels: torch.Tensor, shots: int, draws: int = 20, seed: int = 0) -> float:
    """1-nearest-neighbour (cosine) with ``shots`` labelled images per class: mean accuracy over draws.

    Features are L2-normalised (``features``); draw d picks its labelled images with seed ``seed + d``.
    """
    classes = train_labels.unique().tolist()
    accs = []
    for d in range(draws):
        g = torch.Generator().manual_seed(seed + d)
        picks = []
        for c in classes:
            members = (train_labels == c).nonzero()[:, 0]
            picks.append(members[torch.randperm(len(members), generator=g)[:shots]])
        idx = torch.cat(picks)
        pred = train_labels[idx][(test_features @ train_features[idx].T).argmax(1)]
        accs.append(float((pred == test_labels).float().mean()))
    return sum(accs) / len(accs)


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 20) -> float:
    """k-nearest-neighbour (cosine, majority vote) with every training label."""
    top = (test_features @ train_features.T).topk(k, dim=1).indices
    pred = torch.mode(train_labels[top], dim=1).values
    return float((pred == test_labels).float().mean())


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


@torch.no_grad()
def zero_shot_accuracy(image_emb: torch.Tensor, class_emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images whose most similar class embedding is their label's.

    image_emb (N, D), class_emb (K, D) (one embedding per class, e.g. of a caption "the digit 7"),
    labels (N,) in [0, K). Cosine similarity; the embeddings need not be normalised.
    """
    pred = _cosines(image_emb, class_emb).argmax(dim=1)
    return (pred == labels.to(pred.device)).float().mean().item()


@torch.no_grad()
def recall_at_1(image_emb: torch.Tensor, text_emb: torch.Tensor, image_labels: torch.Tensor | None = None,
                text_labels: torch.Tensor | None = None) -> float:
    """Image -> caption retrieval: the fraction of images whose nearest caption (cosine) is a hit.

    Without labels, caption i belongs to image i (a hit is the diagonal). With labels, a hit is any
    caption with the image's label: several captions can describe one digit class.
    """
    nearest = _cosines(image_emb, text_emb).argmax(dim=1)  # (N,)
    if image_labels is None:
        return (nearest == torch.arange(len(nearest), device=nearest.device)).float().mean().item()
    return (text_labels.to(nearest.device)[nearest] == image_labels.to(nearest.device)).float().mean().item()
