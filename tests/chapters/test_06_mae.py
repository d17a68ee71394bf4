"""Chapter 6 graded tests, checked both ways: the solution passes on 10 seeds, each plausible bug loses
the points of the cells named, each different but correct answer keeps them.

The student's ``MyMAE`` inherits only the layers (``vitcourse.models.mae.MAELayers``), not the reference
passes, so ``super().forward_encoder`` is no way around the exercise (a test below checks it).
"""

import einops
import torch
import torch.nn.functional as F

from vitcourse.models import mae as ref
from vitcourse.models.patches import patchify

from nbexec import Variant
from solution_checks import (  # noqa: F401
    test_correct_alternative_gets_full_marks,
    test_plausible_bug_loses_points,
    test_solution_passes_every_graded_cell,
    test_solution_passes_on_other_seeds,
)

NOTEBOOK = "solutions/06-mae/06-mae.ipynb"


# random_masking ---------------------------------------------------------------------------------

def make_masking(inverted=False, keep=lambda N, r: int(N * (1 - r)), descending=False, unshuffle_mask=True,
                 restore_is_shuffle=False, cpu=False, bool_mask=False, fixed_seed=False):
    """The official masking with one thing changed."""

    def masking(tokens, mask_ratio, generator=None):
        B, N, D = tokens.shape
        k = keep(N, mask_ratio)
        if fixed_seed:
            generator = generator or torch.Generator().manual_seed(0)
        noise = torch.rand(B, N, generator=generator)
        if not cpu:
            noise = noise.to(tokens.device)
        ids_shuffle = noise.argsort(dim=1, descending=descending)
        ids_restore = ids_shuffle if restore_is_shuffle else ids_shuffle.argsort(dim=1)
        visible = tokens.gather(1, ids_shuffle[:, :k, None].expand(-1, -1, D))
        mask = torch.ones(B, N) if cpu else torch.ones(B, N, device=tokens.device)
        mask[:, :k] = 0
        mask = 1 - mask if inverted else mask
        if unshuffle_mask:
            mask = mask.gather(1, ids_restore)
        return visible, mask.bool() if bool_mask else mask, ids_restore

    return masking


def masking_scatter(tokens, mask_ratio, generator=None):
    """Another formulation: the inverse permutation and the mask by scatter, the kept rows by indexing."""
    B, N, D = tokens.shape
    len_keep = int(N * (1 - mask_ratio))
    noise = torch.rand(B, N, generator=generator).to(tokens.device)
    ids_shuffle = torch.sort(noise, dim=1).indices
    positions = torch.arange(N, device=tokens.device).expand(B, N)
    ids_restore = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle, positions)
    rows = torch.arange(B, device=tokens.device)[:, None]
    visible = tokens[rows, ids_shuffle[:, :len_keep]]
    mask = torch.ones(B, N, device=tokens.device).scatter_(1, ids_shuffle[:, :len_keep], 0.0)
    return visible, mask, ids_restore


def masking_loop(tokens, mask_ratio, generator=None):
    """One image at a time."""
    B, N, D = tokens.shape
    len_keep = int(N * (1 - mask_ratio))
    noise = torch.rand(B, N, generator=generator).to(tokens.device)
    visible, masks, restores = [], [], []
    for b in range(B):
        order = torch.argsort(noise[b])
        keep = order[:len_keep]
        visible.append(tokens[b, keep])
        m = tokens.new_ones(N, dtype=torch.float32)
        m[keep] = 0.0
        masks.append(m)
        restores.append(torch.argsort(order))
    return torch.stack(visible), torch.stack(masks), torch.stack(restores)


# forward_encoder / forward_decoder: the solution's class with one pass replaced --------------------------

def encoder(fn):
    """A MyMAE whose forward_encoder is ``fn(self, images, mask_ratio, generator, masking)``, ``masking`` the
    notebook's own ``random_masking``."""

    def replace(ns):
        masking = ns["random_masking"]

        def forward_encoder(self, images, mask_ratio, generator=None):
            return fn(self, images, mask_ratio, generator, masking)

        return {"MyMAE": type("MyMAE", (ns["MyMAE"],), {"forward_encoder": forward_encoder})}

    return replace


def decoder(fn):
    return lambda ns: {"MyMAE": type("MyMAE", (ns["MyMAE"],), {"forward_decoder": fn})}


def _blocks(blocks, x):
    for block in blocks:
        x = block(x)
    return x


def encoder_all_tokens(self, images, mask_ratio, generator, masking):
    """Runs the encoder on every patch and masks only afterwards."""
    x = self.patch_embed(images) + self.pos_embed[:, 1:]
    cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
    x = self.norm(_blocks(self.blocks, torch.cat([cls, x], dim=1)))
    visible, mask, ids_restore = masking(x[:, 1:], mask_ratio, generator)
    return torch.cat([x[:, :1], visible], dim=1), mask, ids_restore


def encoder_positions_after_masking(self, images, mask_ratio, generator, masking):
    """Adds the first len_keep position embeddings to the shuffled visible tokens."""
    x, mask, ids_restore = masking(self.patch_embed(images), mask_ratio, generator)
    x = x + self.pos_embed[:, 1:1 + x.shape[1]]
    cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
    return self.norm(_blocks(self.blocks, torch.cat([cls, x], dim=1))), mask, ids_restore


def encoder_cls_without_position(self, images, mask_ratio, generator, masking):
    """The class token gets no position embedding (harmless only while its slot is zero)."""
    x = self.patch_embed(images) + self.pos_embed[:, 1:]
    x, mask, ids_restore = masking(x, mask_ratio, generator)
    x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    return self.norm(_blocks(self.blocks, x)), mask, ids_restore


def encoder_without_norm(self, images, mask_ratio, generator, masking):
    x = self.patch_embed(images) + self.pos_embed[:, 1:]
    x, mask, ids_restore = masking(x, mask_ratio, generator)
    cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
    return _blocks(self.blocks, torch.cat([cls, x], dim=1)), mask, ids_restore


def encoder_fixed_ratio(self, images, mask_ratio, generator, masking):
    """Ignores mask_ratio: always 75%, the value of every visible check."""
    x = self.patch_embed(images) + self.pos_embed[:, 1:]
    x, mask, ids_restore = masking(x, 0.75, generator)
    cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
    return self.norm(_blocks(self.blocks, torch.cat([cls, x], dim=1))), mask, ids_restore


def encoder_cls_on_cpu(self, images, mask_ratio, generator, masking):
    """Builds the class-token row in a new CPU tensor."""
    x = self.patch_embed(images) + self.pos_embed[:, 1:]
    x, mask, ids_restore = masking(x, mask_ratio, generator)
    B, _, D = x.shape
    cls = torch.zeros(B, 1, D) + self.cls_token + self.pos_embed[:, :1]
    return self.norm(_blocks(self.blocks, torch.cat([cls, x], dim=1))), mask, ids_restore


def encoder_einops(self, images, mask_ratio, generator, masking):
    """A correct encoder with einops and repeat."""
    x = self.patch_embed(images) + self.pos_embed[:, 1:, :]
    x, mask, ids_restore = masking(x, mask_ratio, generator=generator)
    cls = einops.repeat(self.cls_token + self.pos_embed[:, :1], "1 1 d -> b 1 d", b=x.shape[0])
    x = torch.cat((cls, x), dim=1)
    for blk in self.blocks:
        x = blk(x)
    x = self.norm(x)
    return x, mask, ids_restore


def _decoder(self, latent, ids_restore, *, unshuffle=True, positions=True, mask_first=False, drop_cls_first=False,
             zeros_on_cpu=False, skip_norm=False):
    x = self.decoder_embed(latent)
    B, N = ids_restore.shape
    D = x.shape[-1]
    n_mask = N + 1 - x.shape[1]
    mask_tokens = torch.zeros(B, n_mask, D) + self.mask_token if zeros_on_cpu else self.mask_token.expand(B, n_mask, -1)
    patches = torch.cat([mask_tokens, x[:, 1:]] if mask_first else [x[:, 1:], mask_tokens], dim=1)
    if unshuffle:
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, D))
    if drop_cls_first:
        x = patches + self.decoder_pos_embed[:, 1:]
        x = _blocks(self.decoder_blocks, x)
        return self.decoder_pred(self.decoder_norm(x))
    x = torch.cat([x[:, :1], patches], dim=1)
    if positions:
        x = x + self.decoder_pos_embed
    x = _blocks(self.decoder_blocks, x)
    return self.decoder_pred(x if skip_norm else self.decoder_norm(x))[:, 1:]


def decoder_with(**flags):
    return decoder(lambda self, latent, ids_restore: _decoder(self, latent, ids_restore, **flags))


def decoder_scatter(self, latent, ids_restore):
    """Correct: every slot starts as the mask token, the visible tokens are scattered into their places."""
    x = self.decoder_embed(latent)
    B, N = ids_restore.shape
    D = x.shape[-1]
    ids_keep = ids_restore.argsort(dim=1)[:, :x.shape[1] - 1]
    full = self.mask_token.expand(B, N, D).clone()
    full = full.scatter(1, ids_keep[..., None].expand(-1, -1, D), x[:, 1:])
    x = torch.cat([x[:, :1], full], dim=1) + self.decoder_pos_embed
    for block in self.decoder_blocks:
        x = block(x)
    x = self.decoder_norm(x)
    return self.decoder_pred(x)[:, 1:, :]


def decoder_take_along_dim(self, latent, ids_restore):
    """Correct: torch.take_along_dim instead of gather, mask tokens with repeat."""
    x = self.decoder_embed(latent)
    B, N = ids_restore.shape
    mask_tokens = self.mask_token.repeat(B, N - (x.shape[1] - 1), 1)
    x_ = torch.take_along_dim(torch.cat([x[:, 1:], mask_tokens], dim=1), ids_restore.unsqueeze(-1), dim=1)
    x = torch.cat([x[:, :1], x_], dim=1)
    x = x + self.decoder_pos_embed
    for block in self.decoder_blocks:
        x = block(x)
    return self.decoder_pred(self.decoder_norm(x))[:, 1:]


def inherits_reference(ns):
    """The old loophole: a class that inherits the reference passes and calls them."""

    class Lazy(ref.MAE):
        def forward_encoder(self, images, mask_ratio, generator=None):
            return super().forward_encoder(images, mask_ratio, generator)

        def forward_decoder(self, latent, ids_restore):
            return super().forward_decoder(latent, ids_restore)

    return {"MyMAE": Lazy}


# mae_loss ---------------------------------------------------------------------------------------

def loss_with(*, all_patches=False, image_stats=False, biased_var=False, eps_outside=False, mean_of_mask=False,
              ignore_norm=False, double=False):
    def mae_loss(pred, images, mask, patch_size, norm_pix_loss=False):
        target = patchify(images.double() if double else images, patch_size)
        if norm_pix_loss and not ignore_norm:
            if image_stats:
                flat = target.reshape(target.shape[0], -1)
                mean, var = flat.mean(-1)[:, None, None], flat.var(-1)[:, None, None]
            else:
                mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True, unbiased=not biased_var)
            target = (target - mean) / (var.sqrt() + 1e-6 if eps_outside else (var + 1e-6) ** 0.5)
        per_patch = ((pred - target) ** 2).mean(dim=-1)
        if all_patches:
            return per_patch.mean()
        if mean_of_mask:
            return (per_patch * mask).mean()
        return (per_patch * mask).sum() / mask.sum()

    return mae_loss


def loss_boolean_index(pred, images, mask, patch_size, norm_pix_loss=False):
    """Correct: einops for the target, F.mse_loss, boolean indexing of the removed patches."""
    P = patch_size
    target = einops.rearrange(images, "b c (h p) (w q) -> b (h w) (p q c)", p=P, q=P)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        std = torch.sqrt(target.var(dim=-1, keepdim=True, correction=1) + 1e-6)
        target = (target - mean) / std
    per_patch = F.mse_loss(pred, target, reduction="none").mean(-1)
    return per_patch[mask.bool()].mean()


def loss_explicit_variance(pred, images, mask, patch_size, norm_pix_loss=False):
    """Correct: the unbiased variance written out."""
    target = patchify(images, patch_size)
    if norm_pix_loss:
        n = target.shape[-1]
        centred = target - target.mean(-1, keepdim=True)
        var = (centred ** 2).sum(-1, keepdim=True) / (n - 1)
        target = centred / torch.sqrt(var + 1e-6)
    err = (pred - target).pow(2).mean(-1)
    return torch.einsum("bn,bn->", err, mask) / mask.sum()


BUGS = {
    "masking: mask convention inverted": Variant({"random_masking": make_masking(inverted=True)}, "test_masking"),
    "masking: wrong number kept": Variant(
        {"random_masking": make_masking(keep=lambda N, r: min(N, round(N * (1 - r)) + 1))}, "test_masking"),
    "masking: N - int(N * ratio) kept": Variant(
        {"random_masking": make_masking(keep=lambda N, r: N - int(N * r))}, "test_masking"),
    "masking: keeps the largest noise": Variant({"random_masking": make_masking(descending=True)}, "test_masking"),
    "masking: mask left in shuffled order": Variant(
        {"random_masking": make_masking(unshuffle_mask=False)}, "test_masking"),
    "masking: ids_restore is the shuffle itself": Variant(
        {"random_masking": make_masking(restore_is_shuffle=True)}, "test_masking"),
    "masking: noise and mask on the CPU": Variant({"random_masking": make_masking(cpu=True)}, "test_masking"),
    "masking: a boolean mask": Variant({"random_masking": make_masking(bool_mask=True)}, "test_masking"),
    "masking: a fixed generator when none is given": Variant(
        {"random_masking": make_masking(fixed_seed=True)}, "test_masking"),
    "encoder on all tokens": Variant(encoder(encoder_all_tokens), "test_encoder"),
    "encoder: position embeddings added after masking": Variant(
        encoder(encoder_positions_after_masking), "test_encoder"),
    "encoder: class token without its position embedding": Variant(
        encoder(encoder_cls_without_position), "test_encoder"),
    "encoder: no final norm": Variant(encoder(encoder_without_norm), "test_encoder"),
    "encoder: mask ratio fixed at 0.75": Variant(encoder(encoder_fixed_ratio), "test_encoder"),
    "encoder: class token built on the CPU": Variant(encoder(encoder_cls_on_cpu), "test_encoder"),
    "encoder and decoder inherited from the reference MAE": Variant(inherits_reference, "test_encoder", "test_decoder"),
    "decoder forgets to unshuffle": Variant(decoder_with(unshuffle=False), "test_decoder"),
    "decoder without position embeddings": Variant(decoder_with(positions=False), "test_decoder"),
    "decoder: mask tokens before the visible ones": Variant(decoder_with(mask_first=True), "test_decoder"),
    "decoder: class token dropped before the blocks": Variant(decoder_with(drop_cls_first=True), "test_decoder"),
    "decoder: mask tokens built on the CPU": Variant(decoder_with(zeros_on_cpu=True), "test_decoder"),
    "decoder: no decoder_norm": Variant(decoder_with(skip_norm=True), "test_decoder"),
    "loss: over all patches": Variant({"mae_loss": loss_with(all_patches=True)}, "test_loss"),
    "loss: whole-image normalisation": Variant({"mae_loss": loss_with(image_stats=True)}, "test_loss"),
    "loss: biased variance": Variant({"mae_loss": loss_with(biased_var=True)}, "test_loss"),
    "loss: eps added to the standard deviation": Variant({"mae_loss": loss_with(eps_outside=True)}, "test_loss"),
    "loss: mean over all patches of the masked error": Variant({"mae_loss": loss_with(mean_of_mask=True)}, "test_loss"),
    "loss: norm_pix_loss ignored": Variant({"mae_loss": loss_with(ignore_norm=True)}, "test_loss"),
    "loss: computed in float64": Variant({"mae_loss": loss_with(double=True)}, "test_loss"),
}

ALTERNATIVES = {
    "masking with sort, scatter and indexing": Variant({"random_masking": masking_scatter}, "test_masking",
                                                       "test_encoder", "test_training"),
    "masking one image at a time": Variant({"random_masking": masking_loop}, "test_masking"),
    "encoder with einops": Variant(encoder(encoder_einops), "test_encoder"),
    "decoder with scatter into mask tokens": Variant(decoder(decoder_scatter), "test_decoder", "test_training"),
    "decoder with take_along_dim and repeat": Variant(decoder(decoder_take_along_dim), "test_decoder"),
    "loss with einops, mse_loss and boolean indexing": Variant({"mae_loss": loss_boolean_index}, "test_loss",
                                                                "test_training"),
    "loss with the variance written out": Variant({"mae_loss": loss_explicit_variance}, "test_loss"),
}


def test_student_class_does_not_inherit_the_reference_passes(run):
    """The exercise's base class holds layers only: nothing to call with super()."""
    base = run.namespace["MyMAE"].__mro__[1]
    assert base is ref.MAELayers
    for name in ("forward_encoder", "forward_decoder", "forward"):
        assert name not in vars(ref.MAELayers)
    assert not issubclass(run.namespace["MyMAE"], ref.MAE)


def test_reference_layers_and_model_share_state_dict_keys():
    layers, model = ref.MAELayers(), ref.MAE()
    assert list(layers.state_dict()) == list(model.state_dict())
