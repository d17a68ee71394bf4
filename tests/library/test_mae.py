"""vitcourse.models.mae against the official definitions, written out independently."""

import pytest
import torch

from vitcourse import data
from vitcourse.experiments.mae import pretrain
from vitcourse.models.mae import MAE, mae_loss, random_masking
from vitcourse.models.patches import patchify


@pytest.mark.parametrize("N,ratio", [(16, 0.75), (196, 0.75), (49, 0.9), (10, 0.0), (7, 0.5)])
def test_random_masking_counts_and_restore(N, ratio):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, N, 5, generator=g)
    visible, mask, ids_restore = random_masking(tokens, ratio, generator=g)
    keep = int(N * (1 - ratio))
    assert visible.shape == (3, keep, 5)
    assert torch.equal(mask.sum(dim=1), torch.full((3,), float(N - keep)))
    for b in range(3):  # the kept tokens are exactly the unmasked ones, in shuffled order
        kept = tokens[b][mask[b] == 0]
        assert sorted(map(tuple, kept.tolist())) == sorted(map(tuple, visible[b].tolist()))
    # ids_restore undoes the shuffle: shuffled order -> original order
    ids_shuffle = ids_restore.argsort(dim=1)
    shuffled = tokens.gather(1, ids_shuffle[..., None].expand(-1, -1, 5))
    assert torch.equal(shuffled.gather(1, ids_restore[..., None].expand(-1, -1, 5)), tokens)


def test_loss_matches_explicit_formula_and_ignores_visible_patches():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 8, 8, generator=g)
    pred = torch.randn(2, 4, 48, generator=g, requires_grad=True)
    mask = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0]])
    target = patchify(images, 4)
    for norm in (False, True):
        t = target
        if norm:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
        expected = sum(((pred[b, n] - t[b, n]) ** 2).mean() for b in range(2) for n in range(4) if mask[b, n]) / mask.sum()
        assert torch.allclose(mae_loss(pred, images, mask, 4, norm_pix_loss=norm), expected)
    # the default is the official one, shared by the loss and the model: plain pixels
    assert torch.equal(mae_loss(pred, images, mask, 4), mae_loss(pred, images, mask, 4, norm_pix_loss=False))
    assert MAE().norm_pix_loss is False
    pred.grad = None
    mae_loss(pred, images, mask, 4).backward()
    assert torch.all(pred.grad[mask == 0] == 0) and pred.grad[mask == 1].abs().sum() > 0


def test_encoder_sees_only_visible_tokens_and_shapes():
    model = MAE(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16)
    latent, mask, ids_restore = model.forward_encoder(torch.rand(5, 1, 16, 16), 0.75)
    assert latent.shape == (5, 1 + 4, 32)
    loss, pred, mask = model(torch.rand(5, 1, 16, 16))
    assert pred.shape == (5, 16, 16) and mask.shape == (5, 16) and loss.ndim == 0


def test_short_run_lowers_reconstruction_loss_and_repeats():
    images = data.digits(16, "train").tensors[0][:256]

    def run():
        torch.manual_seed(0)
        model = MAE(depth=2)  # the digits setting, with a shallower encoder
        return pretrain(model, images, steps=150, seed=0).loss

    losses = run()
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first / 2, (first, last)
    assert run() == losses
