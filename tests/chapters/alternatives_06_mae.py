"""Chapter 6 (MAE): different but correct answers, each of which must keep full marks, and the ALTERNATIVES dict."""

import einops
import torch
import torch.nn.functional as F

from vitcourse.models.mae import mae_loss as mae_loss_ref
from vitcourse.models.patches import patchify

from bugs_06_mae import decoder, encoder
from nbexec import Variant


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


def train_step_functional(model, images, optimizer, mask_ratio=0.75, generator=None):
    """Correct: gradients set to None first, the loss as float(loss.detach())."""
    optimizer.zero_grad(set_to_none=True)
    latent, mask, ids_restore = model.forward_encoder(images, mask_ratio, generator=generator)
    loss = mae_loss_ref(model.forward_decoder(latent, ids_restore), images, mask, model.patch_size,
                        model.norm_pix_loss)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


ALTERNATIVES = {
    "masking with sort, scatter and indexing": Variant({"random_masking": masking_scatter}, "test_masking",
                                                       "test_encoder", "test_train_step"),
    "masking one image at a time": Variant({"random_masking": masking_loop}, "test_masking"),
    "encoder with einops": Variant(encoder(encoder_einops), "test_encoder"),
    "decoder with scatter into mask tokens": Variant(decoder(decoder_scatter), "test_decoder", "test_train_step"),
    "decoder with take_along_dim and repeat": Variant(decoder(decoder_take_along_dim), "test_decoder"),
    "loss with einops, mse_loss and boolean indexing": Variant({"mae_loss": loss_boolean_index}, "test_loss",
                                                                "test_train_step"),
    "loss with the variance written out": Variant({"mae_loss": loss_explicit_variance}, "test_loss"),
    "training step with set_to_none and float()": Variant({"mae_train_step": train_step_functional}, "test_train_step"),
}
