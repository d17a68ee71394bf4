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
# **Imports:** your answers may use Python's standard library, `torch`, `torchvision`, `numpy` and
# `einops`, besides what the notebook imports for you; these are installed wherever the notebook is
# graded, other packages may not be.
#
# **You will** write the masking (`random_masking`), the encoder and decoder passes of an MAE
# (`forward_encoder`, `forward_decoder`) and the loss (`mae_loss`), train a small MAE on the digits, look
# at its reconstructions, and measure how much the encoder saves by skipping the masked patches.
# 20 points in all.

# %% [markdown]
# This notebook is the exercise of [Chapter 6 — MAE: masked autoencoders](https://vit-from-scratch.github.io/vit-course/book/06-mae.html)
# in the course's book: read the chapter first. The next cell sets the notebook up (on Colab it installs
# the course library).

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
# - `visible` `(B, len_keep, D)`: the kept tokens, in shuffled order;
# - `mask` `(B, N)`: **1 for a removed patch**, 0 for a kept one, in the image's order;
# - `ids_restore` `(B, N)`: the permutation that undoes the shuffle (`argsort` of the shuffle).
#
# Use `torch.rand(B, N, generator=generator)` for the noise so the graded test can reproduce your draw,
# and move it to the tokens' device (the generator lives on the CPU; the tokens may be on a GPU);
# `tensor.gather` picks rows by index.
#
# ### Exercise 1 — `random_masking` (5 points)

# %% nbgrader={"grade": false, "grade_id": "masking", "locked": false, "schema_version": 3, "solution": true, "task": false}
def random_masking(tokens, mask_ratio, generator=None):
    """(B, N, D) -> visible (B, len_keep, D), mask (B, N) with 1 = removed, ids_restore (B, N)."""
    ### BEGIN SOLUTION
    B, N, D = tokens.shape
    len_keep = int(N * (1 - mask_ratio))
    noise = torch.rand(B, N, generator=generator).to(tokens.device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    visible = tokens.gather(1, ids_shuffle[:, :len_keep, None].expand(-1, -1, D))
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
for N, r in [(16, 0.75), (196, 0.75), (50, 0.6), (9, 0.0)]:
    t = torch.randn(3, N, 5, generator=torch.Generator().manual_seed(g_seed))
    mine = random_masking(t, r, generator=torch.Generator().manual_seed(g_seed + 1))
    theirs = ref.random_masking(t, r, generator=torch.Generator().manual_seed(g_seed + 1))
    for got, want, what in zip(mine, theirs, ["visible", "mask", "ids_restore"]):
        checks.check_close(got.float(), want.float(), name=f"{what} for N={N}, ratio {r}")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The encoder runs on the visible patches only
#
# The course's reference `vitcourse.models.mae.MAE` holds every module an MAE needs: `patch_embed`,
# `cls_token`, fixed sin-cos `pos_embed` `(1, 1 + N, D)` (class token first), `blocks`, `norm`, and for the
# decoder `decoder_embed`, `mask_token`, `decoder_pos_embed`, `decoder_blocks`, `decoder_norm`,
# `decoder_pred`. You write the two passes in a subclass.
#
# **Encoder** (as in the paper): embed the patches and add their position embeddings
# (`pos_embed[:, 1:]`), mask with your `random_masking`, prepend the class token plus its position
# embedding (`pos_embed[:, :1]`), run the blocks, apply `norm`. Return `(latent, mask, ids_restore)`.
#
# **Decoder**: project the latent with `decoder_embed`; append `N - len_keep` copies of `mask_token` after
# the visible patch tokens (the class token stays in front); **unshuffle** the patch part with
# `ids_restore` so every token is back at its position; add `decoder_pos_embed`; run the decoder blocks,
# `decoder_norm` and `decoder_pred`; drop the class token. Output `(B, N, P*P*C)`.
#
# ### Exercise 2 — `forward_encoder` (4 points) and Exercise 3 — `forward_decoder` (4 points)

# %% nbgrader={"grade": false, "grade_id": "mae_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MyMAE(ref.MAE):
    def forward_encoder(self, images, mask_ratio, generator=None):
        ### BEGIN SOLUTION
        x = self.patch_embed(images) + self.pos_embed[:, 1:]
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore
        ### END SOLUTION

    def forward_decoder(self, latent, ids_restore):
        ### BEGIN SOLUTION
        x = self.decoder_embed(latent)
        B, N = ids_restore.shape
        mask_tokens = self.mask_token.expand(B, N + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
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
g = env.grading_seed()
for ratio in (0.5, 0.9):
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(g))
    a = mine.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(g + 7))
    b = theirs.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(g + 7))
    checks.check_close(a[0], b[0], atol=1e-5, name=f"latent at ratio {ratio}")
    checks.check_close(a[1], b[1], name=f"mask at ratio {ratio}")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_decoder", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
latent, mask, ids = theirs.forward_encoder(images, 0.75, generator=torch.Generator().manual_seed(1))
pred = mine.forward_decoder(latent, ids)
checks.check_shape(pred, (3, 16, 16), name="decoder output (B, N, P*P*C)")
checks.check_close(pred, theirs.forward_decoder(latent, ids), atol=1e-5, name="decoder vs the reference",
                   hint="append the mask tokens after the visible patches, unshuffle with ids_restore, then add decoder_pos_embed")
print("forward_decoder: visible checks passed")
### BEGIN HIDDEN TESTS
g = env.grading_seed()
with torch.no_grad():
    mine.mask_token.normal_(generator=torch.Generator().manual_seed(g))
theirs.load_state_dict(mine.state_dict())
for ratio in (0.25, 0.75):
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(g + 3))
    lat, m, ids = theirs.forward_encoder(x, ratio, generator=torch.Generator().manual_seed(g + 4))
    checks.check_close(mine.forward_decoder(lat, ids), theirs.forward_decoder(lat, ids), atol=1e-5,
                       name=f"decoder at ratio {ratio}")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The loss: removed patches only
#
# The target of each patch is its pixels in `patchify` order (chapter 1). The loss is the squared error
# averaged over a patch's values, then averaged over the **removed** patches only: predicting a visible
# patch is trivial and would teach nothing. With `norm_pix_loss=True` each target patch is first normalised
# by its own mean and variance, `(t - mean) / sqrt(var + 1e-6)` (unbiased variance, as `tensor.var`), which
# the paper found gives better features; the official code leaves it off by default, and so does the
# course's `MAE`.
#
# ### Exercise 4 — `mae_loss` (4 points)

# %% nbgrader={"grade": false, "grade_id": "loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def mae_loss(pred, images, mask, patch_size, norm_pix_loss=False):
    """Mean squared error over the removed patches (mask == 1)."""
    ### BEGIN SOLUTION
    target = patchify(images, patch_size)
    if norm_pix_loss:
        target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
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
g = torch.Generator().manual_seed(env.grading_seed())
for C, P in [(3, 4), (1, 2)]:
    x = torch.rand(3, C, 4 * P, 4 * P, generator=g)
    p = torch.randn(3, 16, P * P * C, generator=g)
    m = (torch.rand(3, 16, generator=g) < 0.7).float()
    m[:, 0] = 1.0
    for norm in (False, True):
        checks.check_close(mae_loss(p, x, m, P, norm_pix_loss=norm), ref.mae_loss(p, x, m, P, norm_pix_loss=norm),
                           name=f"mae_loss (C={C}, P={P}, norm_pix_loss={norm})")
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

# %%
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

# %%
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
