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
    """An MAEEncoder whose forward_encoder is ``fn(self, images, mask_ratio, generator, masking)``, ``masking``
    the notebook's own ``random_masking``."""

    def replace(ns):
        masking = ns["random_masking"]

        def forward_encoder(self, images, mask_ratio, generator=None):
            return fn(self, images, mask_ratio, generator, masking)

        return {"MAEEncoder": type("MAEEncoder", (ns["MAEEncoder"],), {"forward_encoder": forward_encoder})}

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

    return {"MAEEncoder": Lazy}


def decoder_inherits_reference(ns):
    class Lazy(ref.MAE):
        def forward_decoder(self, latent, ids_restore):
            return super().forward_decoder(latent, ids_restore)

    return {"MyMAE": Lazy}


# mae_train_step ---------------------------------------------------------------------------------

def train_step_with(*, zero_grad=True, step=True, step_first=False, all_patches=False, keep_tensor=False,
                    fixed_ratio=False, no_generator=False, ignore_norm=False):
    """The solution's training step with one thing changed."""

    def replace(ns):
        loss_fn = ns["mae_loss"]

        def mae_train_step(model, images, optimizer, mask_ratio=0.75, generator=None):
            latent, mask, ids = model.forward_encoder(images, 0.75 if fixed_ratio else mask_ratio,
                                                      None if no_generator else generator)
            pred = model.forward_decoder(latent, ids)
            loss = loss_fn(pred, images, torch.ones_like(mask) if all_patches else mask, model.patch_size,
                           norm_pix_loss=False if ignore_norm else model.norm_pix_loss)
            if step_first:
                optimizer.zero_grad()
                optimizer.step()
                loss.backward()
                return loss.item()
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            if step:
                optimizer.step()
            return loss if keep_tensor else loss.item()

        return {"mae_train_step": mae_train_step}

    return replace


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


def at(cell, hint):
    """A bug seen by the visible checks of ``cell``, with ``hint`` in the message."""
    return {"check": cell, "hint": hint}


MASK, ENC, DEC, LOSS, STEP = "test_masking", "test_encoder", "test_decoder", "test_loss", "test_train_step"
ENCODER_ORDER = "patch_embed(images) + pos_embed[:, 1:] first, then random_masking"

BUGS = {
    "masking: mask convention inverted": Variant({"random_masking": make_masking(inverted=True)}, MASK,
                                                 **at(MASK, "mask is 1 for a REMOVED patch")),
    "masking: wrong number kept": Variant(
        {"random_masking": make_masking(keep=lambda N, r: min(N, round(N * (1 - r)) + 1))}, MASK,
        **at(MASK, "int(N * (1 - mask_ratio))")),
    "masking: N - int(N * ratio) kept": Variant(
        {"random_masking": make_masking(keep=lambda N, r: N - int(N * r))}, MASK, **at(MASK, "int(N * (1 - mask_ratio))")),
    "masking: keeps the largest noise": Variant({"random_masking": make_masking(descending=True)}, MASK,
                                                **at(MASK, "sorting the noise in descending order")),
    "masking: mask left in shuffled order": Variant(
        {"random_masking": make_masking(unshuffle_mask=False)}, MASK, **at(MASK, "leaving the mask in shuffled order")),
    "masking: ids_restore is the shuffle itself": Variant(
        {"random_masking": make_masking(restore_is_shuffle=True)}, MASK, **at(MASK, "returning the shuffle itself")),
    "masking: noise and mask on the CPU": Variant({"random_masking": make_masking(cpu=True)}, MASK,
                                                  **at(MASK, "on the tokens' device")),
    "masking: a boolean mask": Variant({"random_masking": make_masking(bool_mask=True)}, MASK,
                                       **at(MASK, "not a bool mask")),
    "masking: a fixed generator when none is given": Variant(
        {"random_masking": make_masking(fixed_seed=True)}, MASK, **at(MASK, "draw from the global random state")),
    "encoder on all tokens": Variant(encoder(encoder_all_tokens), ENC, **at(ENC, ENCODER_ORDER)),
    "encoder: position embeddings added after masking": Variant(
        encoder(encoder_positions_after_masking), ENC, **at(ENC, ENCODER_ORDER)),
    "encoder: class token without its position embedding": Variant(
        encoder(encoder_cls_without_position), ENC, **at(ENC, "a class token without its position embedding")),
    "encoder: no final norm": Variant(encoder(encoder_without_norm), ENC, **at(ENC, "leaving out the final norm")),
    "encoder: mask ratio fixed at 0.75": Variant(encoder(encoder_fixed_ratio), ENC,
                                                 **at(ENC, "pass mask_ratio on to random_masking")),
    "encoder: class token built on the CPU": Variant(encoder(encoder_cls_on_cpu), ENC,
                                                     **at(ENC, "expand self.cls_token")),
    "encoder inherited from the reference MAE": Variant(inherits_reference, ENC,
                                                        **at(ENC, "write forward_encoder yourself")),
    "decoder inherited from the reference MAE": Variant(decoder_inherits_reference, DEC,
                                                        **at(DEC, "write forward_decoder yourself")),
    "decoder forgets to unshuffle": Variant(decoder_with(unshuffle=False), DEC,
                                            **at(DEC, "forgetting to unshuffle the tokens")),
    "decoder without position embeddings": Variant(decoder_with(positions=False), DEC,
                                                   **at(DEC, "leaving out the decoder's position embeddings")),
    "decoder: mask tokens before the visible ones": Variant(decoder_with(mask_first=True), DEC,
                                                            **at(DEC, "putting the mask tokens before the visible")),
    "decoder: class token dropped before the blocks": Variant(decoder_with(drop_cls_first=True), DEC,
                                                              **at(DEC, "class token in front")),
    "decoder: mask tokens built on the CPU": Variant(decoder_with(zeros_on_cpu=True), DEC,
                                                     **at(DEC, "expand self.mask_token")),
    "decoder: no decoder_norm": Variant(decoder_with(skip_norm=True), DEC, **at(DEC, "leaving out decoder_norm")),
    "loss: over all patches": Variant({"mae_loss": loss_with(all_patches=True)}, LOSS,
                                      **at(LOSS, "averaging over every patch, kept ones too")),
    "loss: whole-image normalisation": Variant({"mae_loss": loss_with(image_stats=True)}, LOSS,
                                               **at(LOSS, "the whole image's statistics")),
    "loss: biased variance": Variant({"mae_loss": loss_with(biased_var=True)}, LOSS, **at(LOSS, "the biased variance")),
    "loss: eps added to the standard deviation": Variant({"mae_loss": loss_with(eps_outside=True)}, LOSS,
                                                         **at(LOSS, "adding eps to the standard deviation")),
    "loss: mean over all patches of the masked error": Variant({"mae_loss": loss_with(mean_of_mask=True)}, LOSS,
                                                               **at(LOSS, "not by the removed ones")),
    "loss: norm_pix_loss ignored": Variant({"mae_loss": loss_with(ignore_norm=True)}, LOSS,
                                           **at(LOSS, "ignoring norm_pix_loss")),
    "loss: computed in float64": Variant({"mae_loss": loss_with(double=True)}, LOSS, **at(LOSS, "no .double()")),
    "train step: no optimizer.zero_grad()": Variant(train_step_with(zero_grad=False), STEP,
                                                    **at(STEP, "no optimizer.zero_grad()")),
    "train step: no optimizer.step()": Variant(train_step_with(step=False), STEP, **at(STEP, "its value before the step")),
    "train step: step before backward": Variant(train_step_with(step_first=True), STEP, **at(STEP, "in this order")),
    "train step: loss over every patch": Variant(train_step_with(all_patches=True), STEP,
                                                 **at(STEP, "the loss over every patch")),
    "train step: returns the loss tensor": Variant(train_step_with(keep_tensor=True), STEP, **at(STEP, "loss.item()")),
    "train step: mask ratio fixed at 0.75": Variant(train_step_with(fixed_ratio=True), STEP,
                                                    **at(STEP, "the mask_ratio and generator given")),
    "train step: generator not passed on": Variant(train_step_with(no_generator=True), STEP,
                                                   **at(STEP, "the mask_ratio and generator given")),
    "train step: the model's norm_pix_loss ignored": Variant(train_step_with(ignore_norm=True), STEP,
                                                             **at(STEP, "ignoring the model's norm_pix_loss")),
}
