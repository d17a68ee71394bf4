"""Chapter 6 graded tests, checked both ways: the solution passes on 10 seeds, each bug is caught."""

import torch

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)
from vitcourse.models.patches import patchify

NOTEBOOK = "solutions/06-mae/06-mae.ipynb"


def make_masking(inverted=False, keep=lambda N, r: int(N * (1 - r))):
    """The official masking with one thing changed: the mask convention or the number kept."""

    def masking(tokens, mask_ratio, generator=None):
        B, N, D = tokens.shape
        k = keep(N, mask_ratio)
        ids_shuffle = torch.rand(B, N, generator=generator).argsort(dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        visible = tokens.gather(1, ids_shuffle[:, :k, None].expand(-1, -1, D))
        mask = torch.ones(B, N)
        mask[:, :k] = 0
        mask = 1 - mask if inverted else mask
        return visible, mask.gather(1, ids_restore), ids_restore

    return masking


def loss_all_patches(pred, images, mask, patch_size, norm_pix_loss=False):
    target = patchify(images, patch_size)
    if norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    return ((pred - target) ** 2).mean()


def loss_image_statistics(pred, images, mask, patch_size, norm_pix_loss=False):
    """Normalises with the whole image's mean and variance instead of each patch's."""
    target = patchify(images, patch_size)
    if norm_pix_loss:
        flat = target.reshape(target.shape[0], -1)
        target = (target - flat.mean(-1)[:, None, None]) / (flat.var(-1)[:, None, None] + 1e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


def make_decoder(solution_cls, unshuffle=True, positions=True):
    class BuggyMAE(solution_cls):
        def forward_decoder(self, latent, ids_restore):
            x = self.decoder_embed(latent)
            B, N = ids_restore.shape
            patches = torch.cat([x[:, 1:], self.mask_token.expand(B, N + 1 - x.shape[1], -1)], dim=1)
            if unshuffle:
                patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))
            x = torch.cat([x[:, :1], patches], dim=1)
            if positions:
                x = x + self.decoder_pos_embed
            for block in self.decoder_blocks:
                x = block(x)
            return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    return BuggyMAE


def make_encoder_with_all_tokens(solution_cls):
    class BuggyMAE(solution_cls):
        """Runs the encoder on every patch (masking only afterwards)."""

        def forward_encoder(self, images, mask_ratio, generator=None):
            x = self.patch_embed(images) + self.pos_embed[:, 1:]
            cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
            x = torch.cat([cls, x], dim=1)
            for block in self.blocks:
                x = block(x)
            x = self.norm(x)
            visible, mask, ids_restore = run_masking(x[:, 1:], mask_ratio, generator)
            return torch.cat([x[:, :1], visible], dim=1), mask, ids_restore

    return BuggyMAE


def run_masking(tokens, ratio, generator):
    from vitcourse.models.mae import random_masking

    return random_masking(tokens, ratio, generator)


BUGS = {
    "masking: mask convention inverted": Variant({"random_masking": make_masking(inverted=True)}, "test_masking"),
    "masking: wrong number kept": Variant({"random_masking": make_masking(keep=lambda N, r: min(N, round(N * (1 - r)) + 1))}, "test_masking"),
    "loss: over all patches": Variant({"mae_loss": loss_all_patches}, "test_loss"),
    "loss: whole-image normalisation": Variant({"mae_loss": loss_image_statistics}, "test_loss"),
    "decoder forgets to unshuffle": Variant(
        lambda ns: {"MyMAE": make_decoder(ns["MyMAE"], unshuffle=False)}, "test_decoder"),
    "decoder without position embeddings": Variant(
        lambda ns: {"MyMAE": make_decoder(ns["MyMAE"], positions=False)}, "test_decoder"),
    "encoder on all tokens": Variant(lambda ns: {"MyMAE": make_encoder_with_all_tokens(ns["MyMAE"])}, "test_encoder"),
}
