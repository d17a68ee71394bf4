"""Chapter 9 reference: contrastive losses, visual-token merging, projector and token counts.

Each piece is checked against an independent computation (an explicit loop or the formula of the
paper) and, where ``transformers`` has the same function, against it.
"""

import math

import pytest
import torch

from vitcourse.models.vlm import (
    Projector,
    TwoTower,
    clip_loss,
    internvl_tile_grid,
    pixel_shuffle_tokens,
    siglip_loss,
    smart_resize,
    visual_token_count,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# Losses -------------------------------------------------------------------------------------------

def clip_by_loops(img, txt, log_scale):
    """Written from the paper's description: two cross-entropies, one per direction, averaged."""
    B = len(img)
    img = [v / v.norm() for v in img]
    txt = [v / v.norm() for v in txt]
    t = math.exp(log_scale)
    rows = sum(-math.log(math.exp(t * float(img[i] @ txt[i])) / sum(math.exp(t * float(img[i] @ txt[j])) for j in range(B)))
               for i in range(B)) / B
    cols = sum(-math.log(math.exp(t * float(img[j] @ txt[j])) / sum(math.exp(t * float(img[i] @ txt[j])) for i in range(B)))
               for j in range(B)) / B
    return (rows + cols) / 2


def siglip_by_loops(img, txt, log_scale, bias):
    """Zhai et al. (2023), Algorithm 1: -sum_ij log sigmoid(z_ij (t x_i . y_j + b)) / B."""
    B = len(img)
    img = [v / v.norm() for v in img]
    txt = [v / v.norm() for v in txt]
    t = math.exp(log_scale)
    total = 0.0
    for i in range(B):
        for j in range(B):
            z = 1.0 if i == j else -1.0
            total += math.log1p(math.exp(-z * (t * float(img[i] @ txt[j]) + bias)))
    return total / B


@pytest.mark.parametrize("seed", range(4))
def test_losses_match_loops(seed):
    g = gen(seed)
    B, D = int(torch.randint(2, 9, (1,), generator=g)), int(torch.randint(2, 17, (1,), generator=g))
    img, txt = torch.randn(B, D, generator=g) * 3, torch.randn(B, D, generator=g) * 0.5
    s, b = float(torch.rand(1, generator=g)) * 3, float(torch.randn(1, generator=g)) * 5
    assert clip_loss(img, txt, s).item() == pytest.approx(clip_by_loops(img.double(), txt.double(), s), rel=1e-5)
    assert siglip_loss(img, txt, s, b).item() == pytest.approx(siglip_by_loops(img.double(), txt.double(), s, b), rel=1e-5)


def test_clip_loss_is_symmetric_and_permutation_invariant():
    g = gen(1)
    img, txt = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    perm = torch.randperm(6, generator=g)
    torch.testing.assert_close(clip_loss(img, txt, 2.0), clip_loss(txt, img, 2.0))
    torch.testing.assert_close(clip_loss(img[perm], txt[perm], 2.0), clip_loss(img, txt, 2.0))
    assert clip_loss(img, txt[perm], 2.0) != clip_loss(img, txt, 2.0)


def test_siglip_with_perfect_pairs_and_the_papers_init():
    """Orthogonal matched pairs: positives have cos 1, negatives cos 0. With t = 10, b = -10 (the paper's
    init) each positive costs log(1 + e^0) and each of the B^2 - B negatives log(1 + e^-10)."""
    B = 5
    eye = torch.eye(B)
    expected = (B * math.log(2) + (B * B - B) * math.log1p(math.exp(-10))) / B
    assert siglip_loss(eye, eye * 3, math.log(10), -10.0).item() == pytest.approx(expected, rel=1e-6)


def test_losses_reach_the_learned_parameters():
    scale, bias = torch.tensor(math.log(10.0), requires_grad=True), torch.tensor(-10.0, requires_grad=True)
    img, txt = torch.randn(4, 8, generator=gen(2)), torch.randn(4, 8, generator=gen(3))
    (clip_loss(img, txt, scale) + siglip_loss(img, txt, scale, bias)).backward()
    assert scale.grad is not None and bias.grad is not None and bias.grad != 0


def test_losses_reject_mismatched_batches():
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(2, 4\)"):
        clip_loss(torch.zeros(3, 4), torch.zeros(2, 4), 0.0)


# Two towers and metrics ------------------------------------------------------------------------------

def test_two_tower_embeddings_and_temperature():
    model = TwoTower(torch.nn.Linear(5, 7), torch.nn.Embedding(11, 3), image_dim=7, text_dim=3, embed_dim=4)
    img, txt = model(torch.randn(6, 5), torch.randint(0, 11, (6,)))
    assert img.shape == txt.shape == (6, 4)
    torch.testing.assert_close(img.norm(dim=1), torch.ones(6))
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.logit_bias is None
    siglip = TwoTower(torch.nn.Identity(), torch.nn.Identity(), 2, 2, 2, math.log(10), -10.0)
    assert siglip.logit_bias.item() == -10.0


# Visual tokens ------------------------------------------------------------------------------------

def shuffle_by_loops(tokens, h, w, f):
    B, _, C = tokens.shape
    out = torch.zeros(B, (h // f) * (w // f), f * f * C)
    for i in range(h // f):
        for j in range(w // f):
            parts = [tokens[:, (f * i + dy) * w + (f * j + dx)] for dy in range(f) for dx in range(f)]
            out[:, i * (w // f) + j] = torch.cat(parts, dim=-1)
    return out


@pytest.mark.parametrize("h,w,f", [(4, 4, 2), (6, 4, 2), (6, 9, 3), (8, 8, 4), (2, 6, 1)])
def test_pixel_shuffle_matches_loops(h, w, f):
    tokens = torch.randn(2, h * w, 5, generator=gen(h * w + f))
    torch.testing.assert_close(pixel_shuffle_tokens(tokens, (h, w), f), shuffle_by_loops(tokens, h, w, f))


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_pixel_shuffle_matches_internvl(scale):
    """transformers' InternVLModel.pixel_shuffle (ps_version v2) on the (h, w, C) grid of the same tokens."""
    transformers = pytest.importorskip("transformers")
    h, w, C, f = 8, 8, 6, int(1 / scale)
    tokens = torch.randn(3, h * w, C, generator=gen(5))
    theirs = transformers.InternVLModel.pixel_shuffle(None, tokens.reshape(3, h, w, C), scale_factor=scale)
    torch.testing.assert_close(pixel_shuffle_tokens(tokens, h, f), theirs.reshape(3, -1, theirs.shape[-1]))


def test_pixel_shuffle_errors_name_the_problem():
    with pytest.raises(ValueError, match="CLS"):
        pixel_shuffle_tokens(torch.zeros(1, 17, 4), 4, 2)
    with pytest.raises(ValueError, match="5x4"):
        pixel_shuffle_tokens(torch.zeros(1, 20, 4), (5, 4), 2)


def test_projector_matches_llava_projector():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    config = transformers.LlavaConfig(vision_config=transformers.CLIPVisionConfig(hidden_size=12),
                                      text_config=transformers.LlamaConfig(hidden_size=24, num_attention_heads=4,
                                                                           num_key_value_heads=4),
                                      projector_hidden_act="gelu")
    theirs = LlavaMultiModalProjector(config)
    ours = Projector(12, 24)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 7, 12, generator=gen(6))
    torch.testing.assert_close(ours(x), theirs(x))


def test_tile_grid_examples():
    assert internvl_tile_grid(448, 448) == (1, 1)
    assert internvl_tile_grid(300, 600) == (1, 2)  # aspect 2: one row of two tiles
    assert internvl_tile_grid(800, 1600) == (2, 4)  # ties with 1x2; large enough for 8 tiles
    assert internvl_tile_grid(1080, 1920) == (2, 4)  # 16:9 -> 4:2 is closest with at most 12 tiles
    # a square image ties between 1x1, 2x2 and 3x3: a grid wins while the image covers over half its area
    assert internvl_tile_grid(300, 300) == (1, 1)
    assert internvl_tile_grid(800, 800) == (2, 2)
    assert internvl_tile_grid(1000, 1000) == (3, 3)
    assert internvl_tile_grid(100, 1000, min_tiles=1, max_tiles=6) == (1, 6)
    with pytest.raises(ValueError, match="min_tiles"):
        internvl_tile_grid(10, 10, min_tiles=3, max_tiles=2)


def test_tile_grid_matches_transformers():
    pytest.importorskip("transformers")
    from transformers.models.got_ocr2.image_processing_got_ocr2 import (
        get_optimal_tiled_canvas,
    )

    g = gen(7)
    for _ in range(2000):
        h, w = (int(v) for v in torch.randint(16, 4000, (2,), generator=g))
        lo = int(torch.randint(1, 4, (1,), generator=g))
        hi = lo + int(torch.randint(0, 14, (1,), generator=g))
        cols, rows = get_optimal_tiled_canvas((h, w), (448, 448), lo, hi)
        assert internvl_tile_grid(h, w, lo, hi) == (rows, cols), (h, w, lo, hi)


def test_smart_resize_examples_and_transformers():
    assert smart_resize(336, 336) == (336, 336)
    assert smart_resize(42, 70) == (56, 56)  # 1.5 -> 2 and 2.5 -> 2 multiples of 28 (round half to even), then min_pixels
    h, w = smart_resize(4000, 3000, max_pixels=1280 * 28 * 28)
    assert h % 28 == w % 28 == 0 and h * w <= 1280 * 28 * 28
    pytest.importorskip("transformers")
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
        smart_resize as theirs,
    )

    g = gen(8)
    for _ in range(2000):  # sides of 15 px or more: at 14 px transformers rounds a side to 0 and differs
        h, w = (int(v) for v in torch.randint(15, 5000, (2,), generator=g))
        if max(h, w) / min(h, w) > 200:
            continue
        lo, hi = 4 * 28 * 28, [1280, 16384][int(torch.randint(0, 2, (1,), generator=g))] * 28 * 28
        assert smart_resize(h, w, 28, lo, hi) == theirs(h, w, 28, lo, hi), (h, w, hi)


def test_visual_token_counts_of_real_models():
    assert visual_token_count(1080, 1920, "llava") == 576  # (336 / 14)^2, CLS dropped
    assert visual_token_count(448, 448, "internvl") == 256  # one tile, no thumbnail
    assert visual_token_count(1080, 1920, "internvl") == (8 + 1) * 256  # 2 x 4 tiles + thumbnail
    assert visual_token_count(1080, 1920, "internvl", thumbnail=False) == 8 * 256
    h, w = smart_resize(1080, 1920)
    assert visual_token_count(1080, 1920, "qwen2vl") == (h // 14) * (w // 14) // 4 == 2691
    with pytest.raises(ValueError, match="scheme"):
        visual_token_count(10, 10, "blip")


def test_insert_image_tokens_matches_the_scatter_of_transformers_llava():
    """Replacing the one placeholder equals transformers' way: repeat it N times, then masked_scatter."""
    from vitcourse.models.vlm import insert_image_tokens

    g = torch.Generator().manual_seed(0)
    B, L, N, D, image_id = 3, 7, 5, 4, 99
    ids = torch.randint(0, 50, (B, L), generator=g)
    ids[torch.arange(B), torch.tensor([0, 3, 6])] = image_id  # first, middle, last position
    table = torch.randn(100, D, generator=g)
    image = torch.randn(B, N, D, generator=g)
    ours = insert_image_tokens(table[ids], ids, image, image_id)
    expanded = torch.stack([torch.cat([row[row != image_id][:p], torch.full((N,), image_id), row[row != image_id][p:]])
                            for row, p in zip(ids, (0, 3, 6))])  # the processor's repeated placeholder
    embeds = table[expanded].masked_scatter((expanded == image_id)[..., None], image)
    assert ours.shape == (B, L - 1 + N, D)
    assert torch.equal(ours, embeds)
    with pytest.raises(ValueError, match="exactly one image placeholder"):
        insert_image_tokens(table[ids], torch.zeros_like(ids), image, image_id)
