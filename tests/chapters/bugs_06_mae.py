"""Chapter 6 (MAE): plausible student bugs, each of which must lose points, and the BUGS dict."""

import torch

from vitcourse.models import mae as ref
from vitcourse.models.patches import patchify

from nbexec import Variant

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
