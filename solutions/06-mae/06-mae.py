# %% [markdown]
# # Chapter 6 — MAE: masked autoencoders
#
# An image can be its own label: hide part of it, ask a network for what was hidden, and the pixels that
# were there say how good the answer is. A masked autoencoder (MAE; He et al., 2022) pre-trains a ViT on
# this puzzle, and two design decisions settle whether the puzzle teaches anything and what it costs:
#
# - **Hide most of it.** With a few holes, the pixels around each hole give it away; with three patches
#   in four gone (a mask ratio of 75%), filling them takes some grasp of what the whole image shows.
# - **Let the encoder see only what is left.** The ViT encoder reads the visible quarter of the patches
#   and nothing else, not even a placeholder per hole, so it does about a quarter of the work. A separate,
#   small decoder fills the holes: it adds a learned *mask token* for each hidden patch and predicts its
#   pixels. After pre-training the decoder is thrown away; the encoder is what was wanted.
#
# **You will** write the masking (`random_masking`), the encoder and decoder passes of an MAE
# (`forward_encoder`, `forward_decoder`), the loss (`mae_loss`) and the training step that puts them
# together (`mae_train_step`); train a small MAE on the digits and look at its reconstructions; answer
# two written questions, one of them by predicting, then measuring, how much the encoder saves by
# skipping the masked patches.

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
# 20 points: 16 for code, 4 for written answers.

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

import copy
import time
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from torch import nn
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
# compare all three results with the reference for many sizes and ratios.
#
# ### Exercise 1 — `random_masking` (4 points)

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


# %% nbgrader={"grade": true, "grade_id": "test_masking", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def check_masking():
    torch.manual_seed(0)
    tokens = torch.randn(2, 16, 8)
    visible, mask, ids_restore = random_masking(tokens, 0.75, generator=torch.Generator().manual_seed(0))
    checks.check_shape(visible, (2, 4, 8), name="visible tokens for N=16, ratio 0.75",
                       hint="keep len_keep = int(N * (1 - mask_ratio)) tokens per image")
    checks.check_shape(mask, (2, 16), name="mask")
    checks.check_dtype(mask, torch.float32, name="mask",
                       hint="a float mask, 1.0 for a removed patch and 0.0 for a kept one (torch.ones, not a bool mask)")
    checks.check_equal(mask.sum(dim=1).tolist(), [12.0, 12.0], name="removed patches (mask == 1) per image",
                       hint="mask is 1 for a REMOVED patch: ones everywhere, then 0 for the len_keep kept ones")
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))    # the same draw as yours
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    checks.check_close(ids_restore.float(), restore.float(), name="ids_restore",
                       mistakes={"returning the shuffle itself (argsort of the noise)": shuffle.float(),
                                 "sorting the noise in descending order": noise.argsort(dim=1, descending=True)
                                 .argsort(dim=1).float()},
                       hint="ids_shuffle = noise.argsort(dim=1) (smallest first), ids_restore = ids_shuffle.argsort(dim=1)")
    expected_mask = (restore >= 4).float()                                  # removed: not among the 4 smallest
    checks.check_close(mask, expected_mask, name="mask",
                       mistakes={"keeping the patches with the largest noise": (restore < 12).float(),
                                 "leaving the mask in shuffled order (not gathered with ids_restore)":
                                     torch.tensor([[0.0] * 4 + [1.0] * 12] * 2)},
                       hint="build the mask in shuffled order (0 for the first len_keep), then put it back in the "
                            "image's order with mask.gather(1, ids_restore)")
    checks.check_close(visible, tokens.gather(1, shuffle[:, :4, None].expand(-1, -1, 8)), name="visible tokens",
                       hint="the kept tokens in the order of the sorted noise: tokens.gather(1, ids_keep[..., None]"
                            ".expand(-1, -1, D))")
    for N, ratio, keep in ((49, 0.9, 4), (10, 0.75, 2), (7, 0.5, 3)):
        checks.check_equal(random_masking(torch.randn(1, N, 4), ratio)[0].shape[1], keep,
                           name=f"patches kept for N={N}, ratio {ratio}",
                           hint="len_keep = int(N * (1 - mask_ratio)), as the official code")
    t = torch.randn(2, 32, 3)
    checks.check_true(not torch.equal(random_masking(t, 0.5)[1], random_masking(t, 0.5)[1]),
                      "two calls with generator=None gave the same mask",
                      hint="with generator=None draw from the global random state: torch.rand(B, N, generator=generator)")
    checks.check_on_meta(lambda: random_masking(torch.empty(2, 16, 8, device="meta"), 0.75,
                                                generator=torch.Generator().manual_seed(0)),
                         name="random_masking", shape=(2, 4, 8),
                         hint="put every result on the tokens' device: noise.to(tokens.device), "
                              "torch.ones(B, N, device=tokens.device)")


checks.run(check_masking, "Exercise 1 (random_masking)")
### BEGIN HIDDEN TESTS
g_seed = env.grading_seed()
cases = [(3, 16, 5, 0.75), (2, 196, 7, 0.75), (4, 50, 3, 0.6), (1, 9, 4, 0.0), (3, 49, 2, 0.9), (2, 12, 6, 0.25)]
for k, (B, N, D, r) in enumerate(cases):
    t = torch.randn(B, N, D, generator=torch.Generator().manual_seed(g_seed + k))
    mine = random_masking(t, r, generator=torch.Generator().manual_seed(g_seed + 100 + k))
    theirs = ref.random_masking(t, r, generator=torch.Generator().manual_seed(g_seed + 100 + k))
    checks.check_true(isinstance(mine, tuple) and len(mine) == 3, "return (visible, mask, ids_restore)")
    for got, want, what in zip(mine, theirs, ["visible", "mask", "ids_restore"]):
        checks.check_close(got.float(), want.float(), name=f"{what} for B={B}, N={N}, D={D}, ratio {r}")
    checks.check_dtype(mine[1], torch.float32, name="mask")
    checks.check_dtype(mine[2], torch.int64, name="ids_restore")
t = torch.randn(2, 32, 3, generator=torch.Generator().manual_seed(g_seed))
torch.manual_seed(g_seed + 5)
mine = random_masking(t, 0.5)
torch.manual_seed(g_seed + 5)
theirs = ref.random_masking(t, 0.5)
checks.check_close(mine[1], theirs[1], name="mask with generator=None after torch.manual_seed")
_ = checks.check_on_meta(lambda: random_masking(torch.empty(3, 20, 5, device="meta"), 0.6, generator=torch.Generator()),
                         name="random_masking", shape=(3, 8, 5))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The encoder runs on the visible patches only
#
# The course library's `vitcourse.models.mae.MAELayers` holds every layer an MAE needs and no forward
# pass: `patch_embed`, `cls_token`, a fixed sin-cos `pos_embed` `(1, 1 + N, D)` (class token first), `blocks`,
# `norm`, and for the decoder `decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks`,
# `decoder_norm`, `decoder_pred`. Your classes inherit these layers and add the two passes: `MAEEncoder` the
# encoder's, then `MyMAE`, built on it, the decoder's.
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
# The checks copy your model's weights into the reference `MAE` (`vitcourse.models.mae.MAE`), give both
# random position embeddings and mask token (the real ones hide some mistakes: the class token's
# position embedding is zero), and compare the passes; the hidden checks do it again on other image
# sizes, patch sizes, channels, widths and mask ratios.
#
# ### Exercise 2 — `forward_encoder` (3 points)

# %% nbgrader={"grade": false, "grade_id": "mae_encoder", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MAEEncoder(ref.MAELayers):
    """The layers of MAELayers and the encoder pass."""

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


# %% nbgrader={"grade": true, "grade_id": "test_encoder", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
CFG = dict(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16)


def mae_pair(seed, cfg=CFG, cls=None):
    """Your model (``cls``, default MyMAE) with random position embeddings, class token and mask token, and the
    reference MAE with the same weights."""
    torch.manual_seed(seed)
    mine = (cls or MyMAE)(**cfg)
    with torch.no_grad():
        for t in (mine.pos_embed, mine.cls_token, mine.mask_token, mine.decoder_pos_embed):
            t.copy_(torch.randn(t.shape))
    theirs = ref.MAE(**cfg)
    theirs.load_state_dict(mine.state_dict())
    return mine, theirs


def reference_with(theirs, **changes):
    """A copy of the reference MAE with some of its layers or buffers replaced."""
    other = copy.deepcopy(theirs)
    for name, value in changes.items():
        setattr(other, name, value)
    return other


def check_encoder():
    checks.check_true(not issubclass(MAEEncoder, ref.MAE), "MAEEncoder inherits the reference MAE",
                      hint="class MAEEncoder(ref.MAELayers): write forward_encoder yourself")
    mine, theirs = mae_pair(0, cls=MAEEncoder)
    images = torch.rand(3, 1, 16, 16)
    seed = lambda: torch.Generator().manual_seed(0)   # the same masks for both models
    latent, mask, ids = mine.forward_encoder(images, 0.5, generator=seed())
    checks.check_shape(latent, (3, 1 + 8, 32), name="latent for 16 patches at mask ratio 0.5",
                       hint="pass mask_ratio on to random_masking; the encoder sees the class token and the "
                            "int(16 * (1 - 0.5)) = 8 visible patches only")
    expected, expected_mask, _ = theirs.forward_encoder(images, 0.5, generator=seed())
    checks.check_close(mask, expected_mask, name="the mask forward_encoder returns",
                       hint="return the mask of random_masking, called with the generator you were given")
    cls_pos = torch.zeros_like(theirs.pos_embed)
    cls_pos[:, 1:] = theirs.pos_embed[:, 1:]
    checks.check_close(latent, expected, atol=1e-5, name="latent vs the reference with the same weights and masks",
                       mistakes={"leaving out the final norm": reference_with(theirs, norm=nn.Identity())
                                 .forward_encoder(images, 0.5, generator=seed())[0],
                                 "a class token without its position embedding (pos_embed[:, :1])":
                                     reference_with(theirs, pos_embed=cls_pos).forward_encoder(images, 0.5,
                                                                                              generator=seed())[0]},
                       hint="patch_embed(images) + pos_embed[:, 1:] first, then random_masking; class token + "
                            "pos_embed[:, :1] in front; blocks; norm")
    checks.check_dtype(latent, torch.float32, name="latent")
    meta = MAEEncoder(**CFG).to("meta")
    checks.check_on_meta(lambda: meta.forward_encoder(torch.empty(2, 1, 16, 16, device="meta"), 0.75,
                                                      generator=torch.Generator()),
                         name="forward_encoder", shape=(2, 1 + 4, 32),
                         hint="create no tensor on a fixed device: expand self.cls_token to the batch")


checks.run(check_encoder, "Exercise 2 (forward_encoder)", after=[check_masking])
### BEGIN HIDDEN TESTS
checks.check_true(not issubclass(MAEEncoder, ref.MAE) and MAEEncoder.forward_encoder is not ref.MAE.forward_encoder,
                  "MAEEncoder must build on MAELayers and write its own forward_encoder, not reuse the reference MAE's")
g = torch.Generator().manual_seed(env.grading_seed() + 10)
configs = [
    dict(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16),
    dict(img_size=(12, 20), patch_size=4, in_chans=3, embed_dim=24, depth=1, num_heads=3, decoder_embed_dim=8),
    dict(img_size=8, patch_size=2, in_chans=2, embed_dim=16, depth=3, num_heads=4, decoder_embed_dim=12, mlp_ratio=2.0),
]
for k, c in enumerate(configs):
    mine_k, theirs_k = mae_pair(env.grading_seed() + k, c, cls=MAEEncoder)
    H, W = c["img_size"] if isinstance(c["img_size"], tuple) else (c["img_size"],) * 2
    for ratio in (0.0, 0.5, 0.9):
        B = int(torch.randint(1, 5, (1,), generator=g))
        x = torch.rand(B, c["in_chans"], H, W, generator=g)
        s = int(torch.randint(0, 10**6, (1,), generator=g))
        a = mine_k.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(s))
        b = theirs_k.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(s))
        what = f"{c}, batch {B}, ratio {ratio}"
        checks.check_true(isinstance(a, tuple) and len(a) == 3, "forward_encoder returns (latent, mask, ids_restore)")
        checks.check_close(a[0], b[0], atol=1e-5, name=f"latent ({what})")
        checks.check_close(a[1].float(), b[1].float(), name=f"mask ({what})")
        checks.check_close(a[2].float(), b[2].float(), name=f"ids_restore ({what})")
meta_model = MAEEncoder(**configs[1]).to("meta")
_ = checks.check_on_meta(
    lambda: meta_model.forward_encoder(torch.empty(2, 3, 12, 20, device="meta"), 0.75, generator=torch.Generator()),
    name="forward_encoder", shape=(2, 1 + 3, 24))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3 — `forward_decoder` (3 points)
#
# Now the decoder, in a class that builds on your encoder: `MyMAE` is the whole model.

# %% nbgrader={"grade": false, "grade_id": "mae_decoder", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MyMAE(MAEEncoder):
    """An MAE: the layers of MAELayers, your encoder pass and the decoder pass."""

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


# %% nbgrader={"grade": true, "grade_id": "test_decoder", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_decoder():
    checks.check_true(not issubclass(MyMAE, ref.MAE), "MyMAE inherits the reference MAE",
                      hint="class MyMAE(MAEEncoder): write forward_decoder yourself")
    mine, theirs = mae_pair(1)
    images = torch.rand(3, 1, 16, 16)
    latent, _, ids = theirs.forward_encoder(images, 0.75, generator=torch.Generator().manual_seed(1))
    latent = latent.detach()
    pred = mine.forward_decoder(latent, ids)
    checks.check_shape(pred, (3, 16, 16), name="decoder output (B, N, P*P*C)",
                       hint="predict every patch's P*P*C pixels with decoder_pred, then drop the class token")
    n_removed = 16 - 4
    checks.check_close(pred, theirs.forward_decoder(latent, ids), atol=1e-5, name="decoder vs the reference",
                       mistakes={"forgetting to unshuffle the tokens with ids_restore":
                                     theirs.forward_decoder(latent, torch.arange(16).expand(3, 16)),
                                 "putting the mask tokens before the visible ones":
                                     theirs.forward_decoder(latent, (ids - n_removed) % 16),
                                 "leaving out the decoder's position embeddings":
                                     reference_with(theirs, decoder_pos_embed=torch.zeros_like(theirs.decoder_pos_embed))
                                     .forward_decoder(latent, ids),
                                 "leaving out decoder_norm":
                                     reference_with(theirs, decoder_norm=nn.Identity()).forward_decoder(latent, ids)},
                       hint="decoder_embed; the mask tokens after the visible patches; unshuffle with ids_restore; "
                            "class token in front; + decoder_pos_embed; decoder blocks; decoder_norm; decoder_pred; "
                            "drop the class token")
    pred.sum().backward()
    checks.check_grad_flows(mine.mask_token, name="mask_token",
                            hint="fill the removed positions with self.mask_token (expand or repeat it), so it learns")
    meta = MyMAE(**CFG).to("meta")
    checks.check_on_meta(lambda: meta.forward_decoder(torch.empty(2, 1 + 4, 32, device="meta"),
                                                      torch.empty(2, 16, dtype=torch.long, device="meta")),
                         name="forward_decoder", shape=(2, 16, 16),
                         hint="create no tensor on a fixed device: expand self.mask_token to the batch")


checks.run(check_decoder, "Exercise 3 (forward_decoder)")
### BEGIN HIDDEN TESTS
checks.check_true(not issubclass(MyMAE, ref.MAE) and MyMAE.forward_decoder is not ref.MAE.forward_decoder,
                  "MyMAE must build on MAEEncoder and write its own forward_decoder, not reuse the reference MAE's")
g = torch.Generator().manual_seed(env.grading_seed() + 20)
configs = [
    dict(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16),
    dict(img_size=(12, 20), patch_size=4, in_chans=3, embed_dim=24, depth=1, num_heads=3, decoder_embed_dim=8,
         decoder_depth=1, decoder_num_heads=2),
    dict(img_size=8, patch_size=2, in_chans=2, embed_dim=16, depth=1, num_heads=4, decoder_embed_dim=12,
         decoder_depth=3, decoder_num_heads=3, mlp_ratio=2.0),
]
for k, c in enumerate(configs):
    mine_k, theirs_k = mae_pair(env.grading_seed() + k, c)
    H, W = c["img_size"] if isinstance(c["img_size"], tuple) else (c["img_size"],) * 2
    for ratio in (0.0, 0.25, 0.75):
        B = int(torch.randint(1, 5, (1,), generator=g))
        x = torch.rand(B, c["in_chans"], H, W, generator=g)
        lat, m, ids = theirs_k.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(k))
        got = mine_k.forward_decoder(lat, ids)
        checks.check_close(got, theirs_k.forward_decoder(lat, ids), atol=1e-5,
                           name=f"decoder ({c}, batch {B}, ratio {ratio})")
        checks.check_dtype(got, torch.float32, name="the prediction")
meta_model = MyMAE(**configs[1]).to("meta")
_ = checks.check_on_meta(
    lambda: meta_model.forward_decoder(torch.empty(2, 1 + 3, 24, device="meta"),
                                       torch.empty(2, 15, dtype=torch.long, device="meta")),
    name="forward_decoder", shape=(2, 15, 48))
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
# ### Exercise 4 — `mae_loss` (3 points)

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


# %% nbgrader={"grade": true, "grade_id": "test_loss", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_loss():
    torch.manual_seed(0)
    images = torch.rand(2, 1, 8, 8)
    images[0, :, :4, :4] = 0.5 + 1e-4 * torch.rand(1, 4, 4)               # a nearly flat patch
    pred = torch.randn(2, 4, 16, requires_grad=True)
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])   # 3 and 1 removed patches
    target = patchify(images, 4)                                         # (2, 4, 16)
    error = ((pred - target) ** 2).mean(-1).detach()                     # (2, 4): per patch
    loss = mae_loss(pred, images, mask, 4)
    checks.check_close(loss, (error * mask).sum() / 4, name="mae_loss with plain pixels",
                       mistakes={"averaging over every patch, kept ones too": error.mean(),
                                 "dividing the masked error by all N patches, not by the removed ones":
                                     (error * mask).mean()},
                       hint="mean over each patch's values, then over the removed patches only "
                            "((per_patch * mask).sum() / mask.sum())")
    checks.check_shape(loss, (), name="the loss", hint="return one number, a 0-d tensor")
    checks.check_dtype(loss, torch.float32, name="the loss", hint="keep the inputs' dtype: no .double()")
    loss.backward()
    checks.check_true(bool((pred.grad[mask == 0] == 0).all()), "the gradient at visible patches (mask == 0) is not zero",
                      hint="the loss covers the removed patches only: weight each patch's error by the mask")

    def normalised(mean, var):
        return (target - mean) / (var + 1e-6) ** 0.5

    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    by_patch = lambda t: (((pred - t) ** 2).mean(-1) * mask).sum() / 4
    flat = target.reshape(2, -1)
    checks.check_close(mae_loss(pred, images, mask, 4, norm_pix_loss=True), by_patch(normalised(mean, var)),
                       name="mae_loss with norm_pix_loss=True",
                       mistakes={"ignoring norm_pix_loss": by_patch(target),
                                 "the biased variance (unbiased=False)":
                                     by_patch(normalised(mean, target.var(-1, keepdim=True, unbiased=False))),
                                 "adding eps to the standard deviation instead of the variance":
                                     by_patch((target - mean) / (var.sqrt() + 1e-6)),
                                 "normalising by the whole image's statistics, not each patch's":
                                     by_patch((target - flat.mean(-1)[:, None, None]) / (flat.var(-1)[:, None, None]
                                                                                         + 1e-6) ** 0.5)},
                       hint="normalise each target patch by its own statistics: (t - t.mean(-1)) / sqrt(t.var(-1) + 1e-6)")
    checks.check_on_meta(lambda: mae_loss(torch.empty(2, 4, 16, device="meta"), torch.empty(2, 1, 8, 8, device="meta"),
                                          torch.empty(2, 4, device="meta"), 4), name="mae_loss", shape=(),
                         hint="create no tensor on a fixed device")


checks.run(check_loss, "Exercise 4 (mae_loss)")
### BEGIN HIDDEN TESTS
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
                           name=f"mae_loss (B={B}, C={C}, P={P}, {h * P}x{w * P} images, norm_pix_loss={norm})")
        checks.check_dtype(got, torch.float32, name="the loss")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The training step
#
# One step of pre-training puts the pieces together: run the encoder on the batch (masking with
# `mask_ratio` and the `generator` you are given), the decoder on its latent, your `mae_loss` on the
# removed patches (with the model's own `model.norm_pix_loss` and `model.patch_size`), then the optimiser's
# three calls: clear the gradients of the previous step, back-propagate, update the weights.
#
# ### Exercise 5 — `mae_train_step` (3 points)
#
# Write `mae_train_step(model, images, optimizer, mask_ratio=0.75, generator=None)`: one optimisation step
# of `model` (a `MyMAE`) on the batch `images` `(B, C, H, W)`. Return the loss as a Python number
# (`loss.item()`), so that a training loop can keep it without keeping the step's computation graph. The
# check compares one step with SGD against the gradient it should take, then trains a small MAE for 150
# steps with AdamW and your step: the masked-patch loss should fall by at least half.

# %% nbgrader={"grade": false, "grade_id": "train_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mae_train_step(model, images, optimizer, mask_ratio=0.75, generator=None):
    """One step: encoder, decoder, loss on the removed patches, backward, optimiser update. Returns the loss."""
    ### BEGIN SOLUTION
    latent, mask, ids_restore = model.forward_encoder(images, mask_ratio, generator)
    pred = model.forward_decoder(latent, ids_restore)
    loss = mae_loss(pred, images, mask, model.patch_size, norm_pix_loss=model.norm_pix_loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_train_step", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def expected_sgd_step(theirs, batch, ratio, seed, lr, grads_so_far=None):
    """The reference MAE's loss on ``batch`` and its weights after one SGD step from its current ones (the
    gradient of this batch only, or plus ``grads_so_far`` to show what kept gradients would do)."""
    theirs.zero_grad()
    loss = theirs(batch, ratio, generator=torch.Generator().manual_seed(seed))[0]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in theirs.named_parameters()}
    if grads_so_far:
        grads = {n: g + grads_so_far[n] for n, g in grads.items()}
    with torch.no_grad():
        after = {n: p - lr * grads[n] for n, p in theirs.named_parameters()}
    return loss.detach(), after, grads


def check_train_step():
    torch.manual_seed(0)
    cfg = dict(img_size=8, patch_size=4, in_chans=1, embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=8,
               decoder_depth=1, decoder_num_heads=2)
    lr, batches = 0.5, torch.rand(2, 3, 1, 8, 8)
    for norm_pix_loss, ratio in ((False, 0.5), (True, 0.25)):
        mine = MyMAE(**cfg, norm_pix_loss=norm_pix_loss)
        theirs = ref.MAE(**cfg, norm_pix_loss=norm_pix_loss)
        theirs.load_state_dict(mine.state_dict())
        before = {n: p.detach().clone() for n, p in mine.named_parameters()}
        optimizer = torch.optim.SGD(mine.parameters(), lr=lr)
        what = f"norm_pix_loss={norm_pix_loss}, mask_ratio {ratio}"
        grads = None
        for step, batch in enumerate(batches):
            loss = mae_train_step(mine, batch, optimizer, ratio, generator=torch.Generator().manual_seed(step))
            checks.check_true(isinstance(loss, float), f"mae_train_step returned a {type(loss).__name__}",
                              hint="return loss.item(), a Python number")
            encoded = theirs.forward_encoder(batch, ratio, generator=torch.Generator().manual_seed(step))
            pred = theirs.forward_decoder(encoded[0], encoded[2]).detach()
            want, after, new_grads = expected_sgd_step(theirs, batch, ratio, step, lr)
            checks.check_close(torch.tensor(loss), want, name=f"the loss of step {step + 1} ({what})",
                               mistakes={"the loss over every patch, kept ones too":
                                         ref.mae_loss(pred, batch, torch.ones_like(encoded[1]), 4, norm_pix_loss),
                                         "ignoring the model's norm_pix_loss":
                                         ref.mae_loss(pred, batch, encoded[1], 4, norm_pix_loss=False)},
                               hint="encoder with the mask_ratio and generator given, decoder, then "
                                    "mae_loss(pred, images, mask, model.patch_size, model.norm_pix_loss)")
            for name, p in mine.named_parameters():
                checks.check_close(p, after[name], atol=1e-5, name=f"{name} after step {step + 1} ({what})",
                                   inputs={"its value before the step": before[name]},
                                   mistakes={"gradients of the previous step kept (no optimizer.zero_grad())":
                                             (before[name] - lr * (new_grads[name] + grads[name])) if grads else None},
                                   hint="optimizer.zero_grad(), loss.backward(), optimizer.step(), in this order")
            with torch.no_grad():
                for name, p in theirs.named_parameters():
                    p.copy_(after[name])
            before = {n: p.detach().clone() for n, p in mine.named_parameters()}
            grads = new_grads


checks.run(check_train_step, "Exercise 5 (mae_train_step)", after=[check_encoder, check_decoder, check_loss])

# the training behaviour: 150 AdamW steps on the digits with your step
torch.manual_seed(env.grading_seed())
digits = data.digits(16, "train").tensors[0]
model = MyMAE(depth=2)   # the digits setting (width 64, patch 4, decoder width 32), 2 encoder blocks
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
g = torch.Generator().manual_seed(env.grading_seed())   # draws the batches and the masks
losses = [mae_train_step(model, digits[torch.randint(len(digits), (64,), generator=g)], optimizer, 0.75, g)
          for _ in range(env.steps(150))]
first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
print(f"masked-patch loss: first 10 steps {first:.4f}, last 10 steps {last:.4f}")
checks.check_true(last < first / 2, f"Exercise 5 (mae_train_step): the loss should at least halve in 150 steps, "
                  f"went {first:.4f} -> {last:.4f}", hint="a step must update the weights: optimizer.step()")
### BEGIN HIDDEN TESTS
cfg = dict(img_size=(8, 12), patch_size=4, in_chans=2, embed_dim=12, depth=1, num_heads=2, decoder_embed_dim=8,
           decoder_depth=1, decoder_num_heads=2)
torch.manual_seed(env.grading_seed() + 7)
mine = MyMAE(**cfg, norm_pix_loss=True)
theirs = ref.MAE(**cfg, norm_pix_loss=True)
theirs.load_state_dict(mine.state_dict())
optimizer = torch.optim.SGD(mine.parameters(), lr=0.3)
batch = torch.rand(4, 2, 8, 12, generator=torch.Generator().manual_seed(env.grading_seed()))
loss = mae_train_step(mine, batch, optimizer, 0.5, generator=torch.Generator().manual_seed(3))
want, after, _ = expected_sgd_step(theirs, batch, 0.5, 3, 0.3)
checks.check_close(torch.tensor(loss), want, name="the loss of one step on 8 x 12 images with 2 channels")
for name, p in mine.named_parameters():
    checks.check_close(p, after[name], atol=1e-5, name=f"{name} after one SGD step")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. What did it learn to paint?
#
# Longer training of the same model (a few hundred steps in the `tiny` budget) with the course library's
# loop, `vitcourse.experiments.mae.pretrain`: the same step as yours, with AdamW, batches of 64 and a
# progress record, on a model whose `forward` chains your encoder, decoder and loss. Then reconstructions
# of **held-out** digits: the original, what the encoder saw (removed patches grey), and the prediction
# with the visible patches pasted back.

# %% tags=["demo"]
class TrainableMAE(MyMAE):
    """Your MAE with the forward pass the library's loop calls: images -> (loss, pred, mask)."""

    def forward(self, images, mask_ratio=0.75, generator=None):
        latent, mask, ids_restore = self.forward_encoder(images, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return mae_loss(pred, images, mask, self.patch_size, self.norm_pix_loss), pred, mask


trained = TrainableMAE(depth=2)
trained.load_state_dict(model.state_dict())   # from where the check left off
steps = 600 if BUDGET == "tiny" else 5000
pretrain(trained, digits, steps=steps, seed=1, device=DEVICE)   # ends on the CPU, in eval mode
test_digits = data.digits(16, "test").tensors[0][:6]
with torch.no_grad():
    _, pred, mask = trained(test_digits, 0.75, generator=torch.Generator().manual_seed(0))
viz.show_reconstructions(test_digits, pred, mask, 4, titles=("original", "75% masked", "reconstruction"));

# %% [markdown]
# ## 6. The encoder's saving
#
# The encoder processes $1 + \text{len\_keep}$ tokens instead of $1 + N$: at a mask ratio of 0.75 and
# 196 patches, 50 tokens instead of 197. The next cell times the forward pass of a ViT-S-sized encoder at
# 224 px (batch 8, median of 3 runs) on the full sequence and at mask ratios 0.5, 0.75 and 0.9.
#
# ### Question 1 — predict, then run: how much faster?
#
# *Written answer, 2 points, scored by your instructor.*
#
# Before you run the cell, predict the speed-up at mask ratio 0.75: about 4 times, clearly less, or
# clearly more? Reason from what a transformer block computes: which of its parts cost in proportion to
# the number of tokens, which grow faster, and what the encoder does besides its blocks. Then run it and
# explain what you see, and why the MAE paper's "3x (or more)" faster pre-training is a different number.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_encoder_speedup", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Prediction**
#
# ### BEGIN SOLUTION
# A little more than 4 times. The projections and the MLP of every block cost in proportion to the
# tokens, and 197 / 50 is 3.9; the attention scores and their weighted sum cost in proportion to the
# square of the tokens, 15.5 times less; so the blocks save a bit more than 3.9 overall. Against that,
# the patch embedding still runs on all 196 patches and the masking adds a sort and a gather, which
# shave a little off.
# ### END SOLUTION
#
# **What happened, and why**
#
# ### BEGIN SOLUTION
# On a CPU the measured speed-up at 0.75 is above 4 (as in the course's own measurement of the 12-block
# encoder, `benchmarks/results/06-mae.json`), and 0.9 gains much more than 0.5, because the quadratic
# attention term shrinks fastest. The paper's "3x" is not the encoder alone: it compares the whole MAE (the small
# encoder input plus the decoder, which always runs on all 197 tokens) with a model whose encoder also
# processes the mask tokens, so the decoder's fixed cost takes back part of the encoder's saving. On a
# GPU with a small batch the speed-up can fall below 4, since small matrix products do not keep it busy.
#
# **Rubric (2 points).** Prediction: any prediction with a reason earns its share; it is not graded on
# being right. 1 point: the explanation separates the parts linear in the tokens (about 3.9x fewer) from
# attention's quadratic part (about 15x fewer), and relates the measured number to them (fixed costs such
# as the patch embedding of all patches, or hardware efficiency, for a measured value under 4).
# 1 point: the paper's "3x" is the whole model (encoder and decoder) against an encoder that also
# processes mask tokens, so it is a different, smaller comparison.
# ### END SOLUTION

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
print(f"encoder of {len(big.blocks)} blocks, width 384, batch 8, on {DEVICE.type}")
for ratio, t in times.items():
    print(f"mask ratio {ratio:.2f}: {1 + int(196 * (1 - ratio)):>3} tokens, {t * 1e3:7.1f} ms, speed-up {times[0.0] / t:.2f}x")

# %% [markdown]
# ### Question 2 — what does `norm_pix_loss` ask for?
#
# *Written answer, 2 points, scored by your instructor.*
#
# With `norm_pix_loss=True` each target patch becomes `(t - mean) / sqrt(var + 1e-6)`. In a few sentences:
# what does the model then have to predict for a patch that holds a stroke, and what does it no longer
# have to predict? What happens to the target of a patch that is almost flat, say a faint shading next
# to a stroke, with a variance of 1e-4? Why might this target help on photographs, as the paper found?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_norm_pix_loss", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# For a patch with a stroke the target keeps the stroke's shape, where it is bright and where dark
# relative to the patch's own average, but no longer its overall brightness or contrast: every target
# patch has mean 0 and (about) variance 1, so predicting how bright or how contrasted a hidden patch is
# stops counting. An almost flat patch is divided by $\sqrt{10^{-4} + 10^{-6}} \approx 0.01$: its faint
# variations are blown up a hundredfold to unit variance, so the model is asked to predict what is close
# to noise (a perfectly flat patch just becomes zeros, thanks to the $10^{-6}$). On photographs the
# brightness and colour of a hidden patch are easy to guess from its neighbours and carry little about
# what the object is, while the local structure (edges, texture) does; normalising makes the loss spend
# its weight on that structure, which the paper found gives better features.
#
# **Rubric (2 points).** 1 point: per-patch normalisation removes each patch's mean brightness and
# contrast, leaving its relative pattern (the shape of the stroke) as the target. 0.5 point: a nearly
# flat patch has its tiny variations amplified about 100 times (divided by about 0.01), so its target is
# mostly noise. 0.5 point: on photographs brightness is easy and uninformative, structure is what
# matters, so the loss concentrates on it.
# ### END SOLUTION

# %% [markdown]
# ## Takeaways
#
# - MAE masks most patches at random (75%), runs the encoder on the visible ones only, and lets a small
#   decoder with mask tokens predict the pixels; the loss counts the removed patches only.
# - `ids_restore` is the one bookkeeping trick: shuffle, keep a prefix, and unshuffle in the decoder.
# - The encoder's saving is a little more than the share of tokens it skips, since attention's cost grows
#   with the square of the tokens; the paper's "3x faster" compares the whole model with an encoder that
#   also processes the mask tokens.
# - Normalising each target patch (`norm_pix_loss`) is an option the paper recommends; the official code
#   defaults to plain pixels.
#
# ## Go further: how much should be hidden?
#
# The paper chose 75% for photographs. Is it right for 16 px digits? Train the MAE of section 5 at mask
# ratios 0.25, 0.5, 0.75 and 0.9 (`pretrain(..., mask_ratio=...)`; keep everything else, the number of
# steps included), then measure what each encoder learned: freeze it, take the mean of its patch tokens
# with nothing masked (`forward_encoder(images, 0.0)`), and fit a linear classifier on the training
# digits' features (an `nn.Linear` trained with cross-entropy, or scikit-learn's `LogisticRegression` where
# it is installed), testing on the test digits.
# Look at the reconstruction loss, which always favours little masking, and at the probe's accuracy,
# which need not. It worked if you can say which ratio gives the best probe here, with differences
# larger than the spread over two or three seeds.
