# %% [markdown]
# # Chapter 6 — MAE: masked autoencoders
#
# A masked autoencoder hides most of an image's patches and learns to paint them back. He et al. (2022)
# made two choices that turned this old idea into a fast and strong pre-training method for ViTs:
#
# - mask a **lot**: 75% of the patches, so the task cannot be solved by copying a neighbour;
# - make it **asymmetric**: the encoder (a normal ViT) runs on the visible quarter only, with no
#   placeholder tokens; a small decoder receives the encoded patches plus a learned *mask token* at every
#   hidden position and predicts the pixels.
#
# **You will** write the masking (`random_masking`), the encoder and decoder passes of an MAE
# (`forward_encoder`, `forward_decoder`) and the loss (`mae_loss`), train a small MAE on the digits, look
# at its reconstructions, and measure how much the encoder saves by skipping the masked patches.

# %% [markdown]
# This notebook is the exercise of [Chapter 6 — MAE: masked autoencoders](https://vit-from-scratch.github.io/vit-course/book/06-mae.html)
# in the course's book: read the chapter first.
#
# **How it works.** Write your code where a cell says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` under it), then run the check cell right below: it tests your code at
# once, and when it fails its message names the likely mistake and how to fix it. A check that builds on
# an earlier exercise checks that one first. Answer the written questions in the cells that say
# `YOUR ANSWER HERE`: a person reads and grades them.
#
# **When the notebook is graded,** hidden checks run your code again with other sizes (odd and
# non-square ones too), other random seeds, `float64` inputs, and on PyTorch's `meta` device, which stands
# in for a GPU: a tensor created without `device=...` lands on the CPU and cannot be combined with inputs
# that live elsewhere. Code that fits only the visible examples loses those points.
#
# **Imports:** your answers may use Python's standard library, `torch`, `torchvision`, `numpy` and
# `einops`, besides what the notebook imports for you; these are installed wherever the notebook is
# graded, other packages may not be.
#
# **Time and points.** Top to bottom, the notebook runs in about 30 seconds on a two-core CPU
# (the set-up cell below gives PyTorch one CPU thread, the fastest choice for models this small).
# 20 points, all for code.

# %%
# Set-up. On Colab: install the course library, release 0.2.0 (Colab's own PyTorch is kept).
# Everywhere: check the release, then pick the device and the run budget.
import sys
if "google.colab" in sys.modules:
    print("Installing the course library vitcourse 0.2.0 ...")
    # %pip install -q "git+https://github.com/vit-from-scratch/vit-course@v0.2.0"
try:
    from vitcourse import env
except ImportError:
    raise SystemExit("The course library is not installed: on Colab check the internet connection and run this "
                     "cell again; elsewhere install it with pip install "
                     '"git+https://github.com/vit-from-scratch/vit-course@v0.2.0".') from None
env.check_version("0.2.0")
env.set_threads()

import time
import torch
import matplotlib.pyplot as plt
from vitcourse import checks, data, env, viz
from vitcourse.experiments.mae import pretrain
from vitcourse.models import mae as ref
from vitcourse.models.patches import patchify, unpatchify

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())


# %% [markdown]
# ## 1. Random masking
#
# For each image, draw one random number per patch, sort, and keep the patches with the smallest
# numbers: `len_keep = int(N * (1 - mask_ratio))` of them (as the official code computes it). Three
# results:
#
# - `visible` `(B, len_keep, D)`: the kept tokens, in shuffled order (the order of the sorted noise);
# - `mask` `(B, N)`, a float tensor: **1.0 for a removed patch**, 0.0 for a kept one, in the image's order;
# - `ids_restore` `(B, N)`: the permutation that undoes the shuffle (`argsort` of the shuffle).
#
# Draw the noise with `torch.rand(B, N, generator=generator)`, so the graded test can reproduce your draw
# (with `generator=None` it comes from PyTorch's global random state), and create every other tensor on
# the tokens' device: the tokens may live on a GPU. `tensor.gather` picks rows by index. The hidden checks
# compare all three results with the reference for many sizes and ratios, and run your function on
# PyTorch's `meta` device, where a tensor left on the CPU shows up as an error.
#
# ### Exercise 1 — `random_masking` (5 points)

# %% nbgrader={"grade": false, "grade_id": "masking", "locked": false, "schema_version": 3, "solution": true, "task": false}
def random_masking(tokens, mask_ratio, generator=None):
    """(B, N, D) -> visible (B, len_keep, D), mask (B, N) with 1 = removed, ids_restore (B, N)."""
    ### BEGIN SOLUTION
    B, N, D = tokens.shape
    len_keep = int(N * (1 - mask_ratio))
    noise = torch.rand(B, N, generator=generator).to(tokens.device)
    ids_shuffle = noise.argsort(dim=1)                 # (B, N): the smallest noise first
    ids_restore = ids_shuffle.argsort(dim=1)           # (B, N): inverse permutation
    visible = tokens.gather(1, ids_shuffle[:, :len_keep, None].expand(-1, -1, D))  # (B, len_keep, D)
    mask = torch.ones(B, N, device=tokens.device)
    mask[:, :len_keep] = 0
    return visible, mask.gather(1, ids_restore), ids_restore
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_masking", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
tokens = torch.randn(2, 16, 8)
visible, mask, ids_restore = random_masking(tokens, 0.75, generator=torch.Generator().manual_seed(0))
checks.check_shape(visible, (2, 4, 8), name="visible tokens for N=16, ratio 0.75")
checks.check_equal(mask.sum().item(), 24.0, name="number of removed patches (mask == 1) in 2 images")
for b in range(2):
    kept = tokens[b][mask[b] == 0]
    checks.check_true(sorted(kept.sum(-1).tolist()) == sorted(visible[b].sum(-1).tolist()),
                      "the visible tokens must be exactly the patches where mask == 0",
                      hint="mask is 1 for a REMOVED patch; build it in shuffled order, then unshuffle it with ids_restore")
checks.check_equal(random_masking(torch.randn(1, 49, 4), 0.9)[0].shape[1], 4, name="len_keep for N=49, ratio 0.9",
                   hint="int(N * (1 - mask_ratio)), as the official code")
print("random_masking: visible checks passed")
### BEGIN HIDDEN TESTS
g_seed = env.grading_seed()
cases = [(3, 16, 5, 0.75), (2, 196, 7, 0.75), (4, 50, 3, 0.6), (1, 9, 4, 0.0), (3, 49, 2, 0.9), (2, 12, 6, 0.25)]
for k, (B, N, D, r) in enumerate(cases):
    t = torch.randn(B, N, D, generator=torch.Generator().manual_seed(g_seed + k))
    mine = random_masking(t, r, generator=torch.Generator().manual_seed(g_seed + 100 + k))
    theirs = ref.random_masking(t, r, generator=torch.Generator().manual_seed(g_seed + 100 + k))
    checks.check_true(isinstance(mine, tuple) and len(mine) == 3, "return (visible, mask, ids_restore)")
    for got, want, what in zip(mine, theirs, ["visible", "mask", "ids_restore"]):
        checks.check_shape(got, want.shape, name=f"{what} for B={B}, N={N}, D={D}, ratio {r}")
        checks.check_close(got.float(), want.float(), name=f"{what} for B={B}, N={N}, D={D}, ratio {r}",
                           hint="keep the patches with the SMALLEST noise, in the order of the sorted noise")
    checks.check_equal(mine[1].dtype, torch.float32, name="dtype of mask",
                       hint="a float mask: 1.0 for a removed patch, 0.0 for a kept one (torch.ones, not a bool mask)")
    checks.check_equal(mine[2].dtype, torch.int64, name="dtype of ids_restore")
# generator=None: the noise comes from the global random state, a new draw on every call
t = torch.randn(2, 32, 3, generator=torch.Generator().manual_seed(g_seed))
torch.manual_seed(g_seed + 5)
mine = random_masking(t, 0.5)
torch.manual_seed(g_seed + 5)
theirs = ref.random_masking(t, 0.5)
checks.check_close(mine[1], theirs[1], name="mask with generator=None after torch.manual_seed",
                   hint="with generator=None, torch.rand(B, N, generator=None) draws from the global random state")
checks.check_true(not torch.equal(random_masking(t, 0.5)[1], random_masking(t, 0.5)[1]),
                  "two calls with generator=None gave the same mask: every call must draw new noise")
# device: every result on the tokens' device (the meta device holds shapes only)
_ = checks.check_on_meta(
        lambda: random_masking(torch.empty(2, 16, 8, device="meta"), 0.75, generator=torch.Generator().manual_seed(0)),
        name="random_masking",
        hint="create tensors on the tokens' device: torch.ones(B, N, device=tokens.device), noise.to(tokens.device)")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The encoder runs on the visible patches only
#
# The course library's `vitcourse.models.mae.MAELayers` holds every layer an MAE needs and no forward
# pass: `patch_embed`, `cls_token`, a fixed sin-cos `pos_embed` `(1, 1 + N, D)` (class token first), `blocks`,
# `norm`, and for the decoder `decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks`,
# `decoder_norm`, `decoder_pred`. Your class inherits these layers and adds the two passes.
#
# **Encoder** (as in the paper): embed the patches and add their position embeddings
# (`pos_embed[:, 1:]`), mask with your `random_masking` (pass `mask_ratio` and `generator` on), prepend the
# class token plus its position embedding (`pos_embed[:, :1]`), run the blocks, apply `norm`. Return
# `(latent, mask, ids_restore)`, `latent` of shape `(B, 1 + len_keep, D)`.
#
# **Decoder**: project the latent with `decoder_embed`; append `N - len_keep` copies of `mask_token` after
# the visible patch tokens (the class token stays in front); **unshuffle** the patch part with
# `ids_restore` so every token is back at its position; add `decoder_pos_embed`; run the decoder blocks,
# `decoder_norm` and `decoder_pred`; drop the class token. Output `(B, N, P*P*C)`.
#
# The hidden checks copy your model's weights into the reference `MAE` and compare both passes on other
# image sizes, patch sizes, channels, widths and mask ratios, with random position embeddings and mask
# token, and run them on the `meta` device.
#
# ### Exercise 2 — `forward_encoder` (4 points) and Exercise 3 — `forward_decoder` (4 points)

# %% nbgrader={"grade": false, "grade_id": "mae_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MyMAE(ref.MAELayers):
    """An MAE: the layers of MAELayers, and the encoder and decoder passes."""

    def forward_encoder(self, images, mask_ratio, generator=None):
        """images (B, C, H, W) -> latent (B, 1 + len_keep, D), mask (B, N), ids_restore (B, N)."""
        ### BEGIN SOLUTION
        x = self.patch_embed(images) + self.pos_embed[:, 1:]                # (B, N, D)
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)      # (B, len_keep, D)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)                                       # (B, 1 + len_keep, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore
        ### END SOLUTION

    def forward_decoder(self, latent, ids_restore):
        """latent (B, 1 + len_keep, D), ids_restore (B, N) -> predicted pixels (B, N, P*P*C)."""
        ### BEGIN SOLUTION
        x = self.decoder_embed(latent)                                       # (B, 1 + len_keep, D_dec)
        B, N = ids_restore.shape
        mask_tokens = self.mask_token.expand(B, N + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)                  # (B, N, D_dec), shuffled order
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))  # image order
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed  # (B, 1 + N, D_dec)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_encoder", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
cfg = dict(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16)
torch.manual_seed(0)
mine = MyMAE(**cfg)
theirs = ref.MAE(**cfg)
theirs.load_state_dict(mine.state_dict())
images = torch.rand(3, 1, 16, 16)
latent, mask, ids = mine.forward_encoder(images, 0.75, generator=torch.Generator().manual_seed(0))
checks.check_shape(latent, (3, 1 + 4, 32), name="latent for 16 patches at ratio 0.75",
                   hint="the encoder sees the class token and the 4 visible patches only")
expected = theirs.forward_encoder(images, 0.75, generator=torch.Generator().manual_seed(0))[0]
checks.check_close(latent, expected, atol=1e-5, name="latent vs the reference with the same weights and noise")
print("forward_encoder: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import mae as ref
checks.check_true(not issubclass(MyMAE, ref.MAE) and MyMAE.forward_encoder is not ref.MAE.forward_encoder,
                  "MyMAE must build on MAELayers and write its own forward_encoder, not reuse the reference MAE's")
g = torch.Generator().manual_seed(env.grading_seed() + 10)
configs = [
    dict(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16),
    dict(img_size=(12, 20), patch_size=4, in_chans=3, embed_dim=24, depth=1, num_heads=3, decoder_embed_dim=8),
    dict(img_size=8, patch_size=2, in_chans=2, embed_dim=16, depth=3, num_heads=4, decoder_embed_dim=12, mlp_ratio=2.0),
]
for k, c in enumerate(configs):
    torch.manual_seed(env.grading_seed() + k)
    mine_k = MyMAE(**c)
    with torch.no_grad():  # random position embeddings: the class token's slot must be used as well
        mine_k.pos_embed.copy_(torch.randn(mine_k.pos_embed.shape, generator=g))
        mine_k.cls_token.normal_(generator=g)
    theirs_k = ref.MAE(**c)
    theirs_k.load_state_dict(mine_k.state_dict())
    H, W = c["img_size"] if isinstance(c["img_size"], tuple) else (c["img_size"],) * 2
    for ratio in (0.0, 0.5, 0.9):
        B = int(torch.randint(1, 5, (1,), generator=g))
        x = torch.rand(B, c["in_chans"], H, W, generator=g)
        s = int(torch.randint(0, 10**6, (1,), generator=g))
        a = mine_k.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(s))
        b = theirs_k.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(s))
        what = f"{c}, batch {B}, ratio {ratio}"
        checks.check_true(isinstance(a, tuple) and len(a) == 3, "forward_encoder returns (latent, mask, ids_restore)")
        checks.check_close(a[0], b[0], atol=1e-5, name=f"latent ({what})",
                           hint="patch embeddings + pos_embed[:, 1:], then mask; class token + pos_embed[:, :1] in "
                                "front; blocks; norm")
        checks.check_close(a[1].float(), b[1].float(), name=f"mask ({what})")
        checks.check_equal(a[0].dtype, torch.float32, name="dtype of latent")
# device: the encoder on the meta device (shapes only): a tensor created on the CPU raises
meta_model = MyMAE(**configs[1]).to("meta")
out = checks.check_on_meta(
    lambda: meta_model.forward_encoder(torch.empty(2, 3, 12, 20, device="meta"), 0.75, generator=torch.Generator()),
    name="forward_encoder", hint="create tensors on the input's device (device=x.device, new_zeros, zeros_like)")
_ = checks.check_shape(out[0], (2, 1 + 3, 24), name="latent of a 12 x 20 image (15 patches) at ratio 0.75")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_decoder", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
cfg = dict(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16)
torch.manual_seed(1)
mine = MyMAE(**cfg)
theirs = ref.MAE(**cfg)
theirs.load_state_dict(mine.state_dict())
images = torch.rand(3, 1, 16, 16)
latent, mask, ids = theirs.forward_encoder(images, 0.75, generator=torch.Generator().manual_seed(1))
pred = mine.forward_decoder(latent, ids)
checks.check_shape(pred, (3, 16, 16), name="decoder output (B, N, P*P*C)")
checks.check_close(pred, theirs.forward_decoder(latent, ids), atol=1e-5, name="decoder vs the reference",
                   hint="append the mask tokens after the visible patches, unshuffle with ids_restore, then add decoder_pos_embed")
print("forward_decoder: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import mae as ref
checks.check_true(not issubclass(MyMAE, ref.MAE) and MyMAE.forward_decoder is not ref.MAE.forward_decoder,
                  "MyMAE must build on MAELayers and write its own forward_decoder, not reuse the reference MAE's")
g = torch.Generator().manual_seed(env.grading_seed() + 20)
configs = [
    dict(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16),
    dict(img_size=(12, 20), patch_size=4, in_chans=3, embed_dim=24, depth=1, num_heads=3, decoder_embed_dim=8,
         decoder_depth=1, decoder_num_heads=2),
    dict(img_size=8, patch_size=2, in_chans=2, embed_dim=16, depth=1, num_heads=4, decoder_embed_dim=12,
         decoder_depth=3, decoder_num_heads=3, mlp_ratio=2.0),
]
for k, c in enumerate(configs):
    torch.manual_seed(env.grading_seed() + k)
    mine_k = MyMAE(**c)
    with torch.no_grad():  # a random mask token and random decoder position embeddings
        mine_k.mask_token.normal_(generator=g)
        mine_k.decoder_pos_embed.copy_(torch.randn(mine_k.decoder_pos_embed.shape, generator=g))
    theirs_k = ref.MAE(**c)
    theirs_k.load_state_dict(mine_k.state_dict())
    H, W = c["img_size"] if isinstance(c["img_size"], tuple) else (c["img_size"],) * 2
    for ratio in (0.0, 0.25, 0.75):
        B = int(torch.randint(1, 5, (1,), generator=g))
        x = torch.rand(B, c["in_chans"], H, W, generator=g)
        lat, m, ids = theirs_k.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(k))
        got = mine_k.forward_decoder(lat, ids)
        checks.check_close(got, theirs_k.forward_decoder(lat, ids), atol=1e-5, name=f"decoder ({c}, batch {B}, ratio {ratio})",
                           hint="decoder_embed; mask tokens after the visible patches; unshuffle with ids_restore; "
                                "class token in front; + decoder_pos_embed; blocks; decoder_norm; decoder_pred; drop the class token")
        checks.check_equal(got.dtype, torch.float32, name="dtype of the prediction")
    mine_k.zero_grad()
    got.sum().backward()
    checks.check_true(mine_k.mask_token.grad is not None and float(mine_k.mask_token.grad.abs().sum()) > 0,
                      "the learned mask_token received no gradient: use self.mask_token for the removed patches")
# device: the decoder on the meta device (shapes only): a tensor created on the CPU raises
meta_model = MyMAE(**configs[1]).to("meta")
out = checks.check_on_meta(
    lambda: meta_model.forward_decoder(torch.empty(2, 1 + 3, 24, device="meta"),
                                       torch.empty(2, 15, dtype=torch.long, device="meta")),
    name="forward_decoder",
    hint="create tensors on the input's device (device=x.device, new_zeros, zeros_like), or expand self.mask_token")
_ = checks.check_shape(out, (2, 15, 48), name="prediction for a 12 x 20 image, patch 4, 3 channels")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The loss: removed patches only
#
# The target of each patch is its pixels in `patchify` order (chapter 1). The loss is the squared error
# averaged over a patch's values, then averaged over the **removed** patches only: predicting a visible
# patch is trivial and would teach nothing. With `norm_pix_loss=True` each target patch is first normalised
# by its own mean and variance, `(t - mean) / sqrt(var + 1e-6)` (unbiased variance, as `tensor.var`), which
# the paper found gives better features; the official code leaves it off by default, and so does the
# course's `MAE`. The hidden checks use other patch sizes, channels, non-square images and masks with a
# different number of removed patches per image.
#
# ### Exercise 4 — `mae_loss` (4 points)

# %% nbgrader={"grade": false, "grade_id": "loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mae_loss(pred, images, mask, patch_size, norm_pix_loss=False):
    """Mean squared error over the removed patches (mask == 1): a scalar."""
    ### BEGIN SOLUTION
    target = patchify(images, patch_size)                       # (B, N, P*P*C)
    if norm_pix_loss:
        target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)             # (B, N)
    return (per_patch * mask).sum() / mask.sum()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_loss", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
images = torch.rand(2, 1, 8, 8)
pred = torch.randn(2, 4, 16, requires_grad=True)
mask = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
loss = mae_loss(pred, images, mask, 4)
checks.check_close(loss, ref.mae_loss(pred, images, mask, 4, norm_pix_loss=False), name="mae_loss with the default",
                   hint="the default is plain pixels (norm_pix_loss=False), as in the official code")
loss.backward()
checks.check_true(bool((pred.grad[mask == 0] == 0).all()),
                  "the gradient at visible patches (mask == 0) must be exactly zero: the loss covers removed patches only")
checks.check_close(mae_loss(pred, images, mask, 4, norm_pix_loss=True),
                   ref.mae_loss(pred, images, mask, 4, norm_pix_loss=True),
                   name="mae_loss with norm_pix_loss", hint="normalise each patch by its own mean and variance")
print("mae_loss: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import mae as ref
g = torch.Generator().manual_seed(env.grading_seed())
for B, C, P, h, w in [(3, 3, 4, 4, 4), (2, 1, 2, 3, 5), (4, 2, 3, 2, 3), (1, 3, 2, 4, 2)]:
    x = torch.rand(B, C, h * P, w * P, generator=g)
    x[0, :, :P, :P] = 0.5 + 1e-4 * torch.rand(C, P, P, generator=g)   # a nearly constant patch
    p = torch.randn(B, h * w, P * P * C, generator=g)
    m = (torch.rand(B, h * w, generator=g) < torch.rand(B, 1, generator=g)).float()
    m[:, 0] = 1.0
    for norm in (False, True):
        got = mae_loss(p, x, m, P, norm_pix_loss=norm)
        checks.check_shape(got, (), name="the loss (a scalar)")
        checks.check_close(got, ref.mae_loss(p, x, m, P, norm_pix_loss=norm),
                           name=f"mae_loss (B={B}, C={C}, P={P}, {h * P}x{w * P} images, norm_pix_loss={norm})",
                           hint="mean over each patch's values, then over all removed patches of the batch; "
                                "normalise with (t - mean) / sqrt(var + 1e-6)")
        checks.check_equal(got.dtype, torch.float32, name="dtype of the loss")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Train it (3 points)
#
# A short seeded run on the digits with *your* masking, encoder, decoder and loss. The reconstruction
# loss on masked patches should fall by at least half within 150 steps.

# %% nbgrader={"grade": true, "grade_id": "test_training", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
class TrainableMAE(MyMAE):
    def forward(self, images, mask_ratio=0.75, generator=None):
        latent, mask, ids = self.forward_encoder(images, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids)
        return mae_loss(pred, images, mask, self.patch_size, norm_pix_loss=False), pred, mask

torch.manual_seed(env.grading_seed())
digits = data.digits(16, "train").tensors[0]
model = TrainableMAE(depth=2)   # the digits setting (width 64, patch 4, decoder width 32), 2 encoder blocks
# 150 AdamW steps (lr 2e-3) on batches of 64, masks drawn from the same seeded generator as the batches
losses = pretrain(model, digits, steps=150, seed=env.grading_seed(), device="cpu").loss
first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
print(f"masked-patch loss: first 10 steps {first:.4f}, last 10 steps {last:.4f}")
checks.check_true(last < first / 2, f"the loss should at least halve in 150 steps, went {first:.4f} -> {last:.4f}")

# %% [markdown]
# ## 5. What did it learn to paint?
#
# Longer training (a few hundred steps in the `tiny` budget) and reconstructions of **held-out** digits:
# the original, what the encoder saw (removed patches grey), and the prediction with the visible patches
# pasted back.

# %% tags=["demo"]
steps = 600 if BUDGET == "tiny" else 5000
pretrain(model, digits, steps=steps, seed=1, device=DEVICE)   # more training, from where the check left off
test_digits = data.digits(16, "test").tensors[0][:6]
model.cpu().eval()   # the pictures are made on the CPU
with torch.no_grad():
    _, pred, mask = model(test_digits, 0.75, generator=torch.Generator().manual_seed(0))
viz.show_reconstructions(test_digits, pred, mask, 4, titles=("original", "75% masked", "reconstruction"));

# %% [markdown]
# ## 6. The encoder's saving
#
# The encoder processes $1 + \text{len\_keep}$ tokens instead of $1 + N$. Its matrix work is mostly linear
# in the tokens (attention's part is quadratic), so at 75% masking it should run close to 4 times faster
# than on the full sequence. Measured here on a ViT-S-sized encoder at 224 px (batch 8, forward only):

# %% tags=["demo"]
big = ref.MAE(img_size=224, patch_size=16, in_chans=3, embed_dim=384, depth=12 if BUDGET == "full" else 4,
              num_heads=6, decoder_embed_dim=128, decoder_depth=1).eval().to(DEVICE)
x = torch.rand(8, 3, 224, 224, device=DEVICE)
times = {}
with torch.no_grad():
    for ratio in [0.0, 0.5, 0.75, 0.9]:
        big.forward_encoder(x, ratio)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            big.forward_encoder(x, ratio)
            if DEVICE.type == "cuda":
                torch.cuda.synchronize()   # a GPU runs asynchronously: wait for it before reading the clock
            runs.append(time.perf_counter() - start)
        times[ratio] = sorted(runs)[1]
for ratio, t in times.items():
    print(f"mask ratio {ratio:.2f}: {1 + int(196 * (1 - ratio)):>3} tokens, {t * 1e3:7.1f} ms, speed-up {times[0.0] / t:.2f}x")

# %% [markdown]
# ## Takeaways
#
# - MAE masks most patches at random (75%), runs the encoder on the visible ones only, and lets a small
#   decoder with mask tokens predict the pixels; the loss counts the removed patches only.
# - `ids_restore` is the one bookkeeping trick: shuffle, keep a prefix, and unshuffle in the decoder.
# - The paper's "3x faster" compares with an encoder that also processes the mask tokens; the encoder
#   alone does about a quarter of the work at 75% masking.
# - Normalising each target patch (`norm_pix_loss`) is an option the paper recommends; the official code
#   defaults to plain pixels.
