"""Chapter 9 (VLM): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from bugs_09_vlm import CLIP_INIT, _cos
from nbexec import Variant

# Different but correct answers: full marks ------------------------------------------------------

def clip_loss_by_log_softmax(image_emb, text_emb, logit_scale):
    x = image_emb / image_emb.norm(dim=1, keepdim=True)
    y = text_emb / text_emb.norm(dim=1, keepdim=True)
    logits = torch.exp(torch.as_tensor(logit_scale, dtype=x.dtype)) * (x @ y.T)
    return -(logits.log_softmax(dim=1).diagonal().mean() + logits.log_softmax(dim=0).diagonal().mean()) / 2


def siglip_loss_by_softplus(image_emb, text_emb, logit_scale, logit_bias):
    logits = torch.as_tensor(logit_scale).exp() * _cos(image_emb, text_emb) + logit_bias
    B = len(logits)
    positives = F.softplus(-logits.diagonal()).sum()
    negatives = F.softplus(logits).sum() - F.softplus(logits.diagonal()).sum()
    return (positives + negatives) / B


class TwoTowerAlternative(nn.Module):
    """Written like openai/CLIP: a 0-d parameter from torch.ones([]), division by the norm."""

    def __init__(self, image_tower, text_tower, image_dim, text_dim, embed_dim, init_logit_scale=CLIP_INIT):
        super().__init__()
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.ones([]) * init_logit_scale)

    def encode_image(self, images):
        x = self.image_proj(self.image_tower(images))
        return x / x.norm(dim=-1, keepdim=True)

    def encode_text(self, tokens):
        y = self.text_proj(self.text_tower(tokens))
        return y / y.norm(dim=-1, keepdim=True)

    def forward(self, images, tokens):
        return self.encode_image(images), self.encode_text(tokens)


def pixel_shuffle_by_slicing(tokens, grid, factor=2):
    """Strided slices of the (B, h, w, C) grid, one per offset (dy, dx), concatenated along channels."""
    h, w = (grid, grid) if isinstance(grid, int) else grid
    if tokens.shape[1] != h * w or h % factor or w % factor:
        raise ValueError("tokens do not tile the grid")
    x = tokens.reshape(tokens.shape[0], h, w, -1)
    parts = [x[:, dy::factor, dx::factor] for dy in range(factor) for dx in range(factor)]
    return torch.cat(parts, dim=-1).flatten(1, 2)


class ProjectorAlternative(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x)))


def insert_image_tokens_by_gather(text_emb, input_ids, image_tokens, image_token_id):
    """No loop: for every output position, whether it reads the text or the image, and at which index
    (transformers' LLaVA does the same with masked_scatter after repeating the placeholder)."""
    is_image = input_ids == image_token_id
    if not torch.equal(is_image.sum(dim=1), torch.ones(len(input_ids), dtype=torch.long)):
        raise ValueError("one placeholder per prompt")
    B, L, D = text_emb.shape
    N = image_tokens.shape[1]
    p = is_image.int().argmax(dim=1, keepdim=True)  # (B, 1)
    j = torch.arange(L - 1 + N).expand(B, -1)  # output positions
    from_image = (j >= p) & (j < p + N)
    text_index = torch.where(j < p, j, j - N + 1).clamp(0, L - 1)
    image_index = (j - p).clamp(0, N - 1)
    text = text_emb.gather(1, text_index[..., None].expand(-1, -1, D))
    image = image_tokens.gather(1, image_index[..., None].expand(-1, -1, D))
    return torch.where(from_image[..., None], image, text)


def tile_grid_by_counts(height, width, min_tiles=1, max_tiles=12, img_size=448):
    best, best_diff = None, math.inf
    for n in range(min_tiles, max_tiles + 1):  # by tile count, then by columns
        for cols in (c for c in range(1, n + 1) if n % c == 0):
            rows = n // cols
            diff = abs(width / height - cols / rows)
            if best is None or diff < best_diff or (diff == best_diff and height * width > img_size**2 * n / 2):
                best, best_diff = (rows, cols), diff
    return best


def token_count_alternative(height, width, scheme="llava", *, patch_size=14, img_size=None, merge=None, min_tiles=1,
                            max_tiles=12, thumbnail=True, min_pixels=3136, max_pixels=12845056):
    def per_tile(size, m):
        return (size // patch_size // m) ** 2

    def qwen_side(x, f):
        return max(f, round(x / f) * f)

    if scheme not in ("llava", "internvl", "qwen2vl"):
        raise ValueError(scheme)
    if scheme == "llava":
        return per_tile(img_size or 336, merge or 1)
    if scheme == "internvl":
        rows, cols = tile_grid_by_counts(height, width, min_tiles, max_tiles, img_size or 448)
        n = rows * cols
        return (n + (thumbnail and n > 1)) * per_tile(img_size or 448, merge or 2)
    m = merge or 2
    f = patch_size * m
    h, w = qwen_side(height, f), qwen_side(width, f)
    if h * w > max_pixels:
        s = (max_pixels / (height * width)) ** 0.5
        h, w = max(f, math.floor(height * s / f) * f), max(f, math.floor(width * s / f) * f)
    elif h * w < min_pixels:
        s = (min_pixels / (height * width)) ** 0.5
        h, w = math.ceil(height * s / f) * f, math.ceil(width * s / f) * f
    return (h // patch_size) * (w // patch_size) // m**2


ALTERNATIVES = {
    "clip_loss with log_softmax": Variant({"clip_loss": clip_loss_by_log_softmax}, "test_clip_loss", "test_two_tower"),
    "siglip_loss with softplus": Variant({"siglip_loss": siglip_loss_by_softplus}, "test_siglip_loss"),
    "TwoTower written differently": Variant({"TwoTower": TwoTowerAlternative}, "test_two_tower"),
    "pixel_shuffle_tokens by slicing": Variant({"pixel_shuffle_tokens": pixel_shuffle_by_slicing}, "test_pixel_shuffle"),
    "Projector with F.gelu, insert_image_tokens by gather": Variant(
        {"Projector": ProjectorAlternative, "insert_image_tokens": insert_image_tokens_by_gather}, "test_projector"),
    "internvl_tile_grid by counting": Variant({"internvl_tile_grid": tile_grid_by_counts}, "test_tile_grid"),
    "visual_token_count written differently": Variant({"visual_token_count": token_count_alternative},
                                                      "test_token_count"),
}
