# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 9 — A ViT inside a vision-language model
#
# Everything so far turned pixels into tokens and tokens into features. A vision-language model puts
# those features next to language, in one of two ways. A **contrastive** model such as CLIP or SigLIP
# trains an image tower and a text tower so that a picture and its caption land on nearby points of
# one space; it can then classify images it was never trained to classify, by comparing them with
# captions. A **generative** model such as LLaVA, InternVL or Qwen2-VL hands the ViT's patch tokens,
# merged and projected, to a language model as if they were words. Here you build the pieces of both.
#
# **You will**
#
# 1. write CLIP's symmetric contrastive loss and SigLIP's pairwise sigmoid loss (`clip_loss`,
#    `siglip_loss`);
# 2. join a course ViT and a small text tower into a `TwoTower` model and train it on the digits with
#    captions, until it recognises digits from captions it has never seen;
# 3. merge neighbouring patch tokens as InternVL does (`pixel_shuffle_tokens`) and project them to a
#    language model's width (`Projector`);
# 4. count the visual tokens that LLaVA-1.5, InternVL and Qwen2-VL hand their language model
#    (`internvl_tile_grid`, `visual_token_count`).

# %% [markdown]
# This notebook is the exercise of [Chapter 9 — A ViT inside a vision-language model](https://vit-from-scratch.github.io/vit-course/book/09-vlm.html)
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
# **Time and points.** Top to bottom, the notebook runs in about 20 seconds on a two-core CPU
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

import math
import time
import torch
import torch.nn.functional as F
from torch import nn
from vitcourse import checks, env, viz
from vitcourse.experiments import vlm as vlm_train
from vitcourse.models.vit import ViT

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())

# %% [markdown]
# ## 1. One space for images and captions
#
# Take a batch of $B$ images and their $B$ captions. The image tower turns image $i$ into a vector
# $x_i$, the text tower turns caption $j$ into $y_j$, both of the same width and both scaled to unit
# length. Their dot products form a $B \times B$ matrix of cosine similarities; the matching pairs sit
# on its diagonal. CLIP multiplies the matrix by a learned factor $t$ and asks each row to pick its
# diagonal entry, like a $B$-way classification of the right caption, and each column to do the same
# for images:
#
# $$
# \ell_{ij} = t\, x_i \cdot y_j, \qquad
# \mathcal{L}_\text{CLIP} = \frac{1}{2}\left[\frac{1}{B}\sum_i -\log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}}
#   + \frac{1}{B}\sum_j -\log \frac{e^{\ell_{jj}}}{\sum_i e^{\ell_{ij}}}\right].
# $$
#
# The factor is learned through its logarithm, `logit_scale` $= \log t$, so that it stays positive;
# CLIP starts it at $\log(1/0.07)$, a temperature of 0.07.
#
# ### Exercise 1 — `clip_loss` (3 points)
#
# Write `clip_loss(image_emb, text_emb, logit_scale)`: embeddings of shape `(B, D)` (row $i$ of each
# is a matching pair, not yet normalised), `logit_scale` the logarithm of $t$ (a float or a scalar
# tensor that must receive a gradient). Return the scalar loss above. `F.normalize` and
# `F.cross_entropy` do most of the work.

# %% nbgrader={"grade": false, "grade_id": "clip_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric cross-entropy over the (B, B) matrix exp(logit_scale) * cos(image_i, text_j)."""
    ### BEGIN SOLUTION
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = torch.as_tensor(logit_scale).exp() * image_emb @ text_emb.T  # (B, B)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_clip_loss", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Visible checks: perfect pairs, random pairs, and the two directions.
B = 4
eye = torch.eye(B)
perfect = clip_loss(eye, 5 * eye, math.log(10.0))  # orthogonal pairs: cos 1 on the diagonal, 0 elsewhere
expected = -math.log(math.exp(10) / (math.exp(10) + B - 1))  # the same in both directions
checks.check_close(perfect, torch.tensor(expected), name="clip_loss on perfect orthogonal pairs, t = 10",
                   hint="normalise both embeddings and multiply the cosines by exp(logit_scale)")
g = torch.Generator().manual_seed(0)
a, b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
checks.check_close(clip_loss(a, b, 1.0), clip_loss(b, a, 1.0), name="clip_loss(a, b) against clip_loss(b, a)",
                   hint="the loss is symmetric: average the image->text and text->image cross-entropies")
scale = torch.tensor(1.0, requires_grad=True)
clip_loss(a, b, scale).backward()
checks.check_true(scale.grad is not None and scale.grad != 0, "no gradient reached logit_scale",
                  hint="use torch operations on logit_scale (no .item() or math.exp)")
print("clip_loss: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import vlm as ref
g = torch.Generator().manual_seed(env.grading_seed())
for _ in range(5):
    B, D = int(torch.randint(2, 17, (1,), generator=g)), int(torch.randint(2, 33, (1,), generator=g))
    a, b = torch.randn(B, D, generator=g) * 4, torch.randn(B, D, generator=g) * 0.3
    s = float(torch.rand(1, generator=g)) * 4 - 1
    checks.check_close(clip_loss(a, b, s), ref.clip_loss(a, b, s), name=f"clip_loss, B={B}, D={D}, logit_scale={s:.2f}")
    t = torch.tensor(s)
    checks.check_close(clip_loss(a, b, t), ref.clip_loss(a, b, t), name="clip_loss with a tensor logit_scale")
    perm = torch.randperm(B, generator=g)
    checks.check_close(clip_loss(a[perm], b[perm], s), clip_loss(a, b, s),
                       name="clip_loss after shuffling the pairs together (must not change)")
_ = checks.check_on_meta(lambda: clip_loss(torch.empty(4, 8, device="meta"), torch.empty(4, 8, device="meta"), 1.0), name="clip_loss",
                         hint="create the targets on the logits' device (torch.arange(B, device=logits.device))")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 — `siglip_loss` (3 points)
#
# SigLIP (Zhai et al., 2023) drops the softmax. Every entry of the matrix becomes its own yes/no
# question, "is this caption the one for this image?", answered by a sigmoid with a learned bias $b$:
#
# $$
# \mathcal{L}_\text{SigLIP} = -\frac{1}{B} \sum_{i=1}^{B} \sum_{j=1}^{B} \log \sigma\big(z_{ij}\,(t\, x_i \cdot y_j + b)\big),
# \qquad z_{ij} = \begin{cases} +1 & i = j \\ -1 & i \ne j \end{cases}
# $$
#
# summed over the captions of each image and averaged over images. No row or column has to be
# normalised against the others, so the loss for one pair does not depend on the rest of the batch.
# The paper starts at $t = 10$ ($\log t = \log 10$) and $b = -10$: almost every pair is a negative,
# and the bias lets the model begin by saying "no" to all of them.
#
# Write `siglip_loss(image_emb, text_emb, logit_scale, logit_bias)` with the same conventions as
# `clip_loss` (`logit_scale` is $\log t$). `F.logsigmoid` is numerically safe.

# %% nbgrader={"grade": false, "grade_id": "siglip_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def siglip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale, logit_bias) -> torch.Tensor:
    """-(1/B) sum_ij log sigmoid(z_ij (exp(logit_scale) cos(image_i, text_j) + logit_bias)), z = +1 on the diagonal."""
    ### BEGIN SOLUTION
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = torch.as_tensor(logit_scale).exp() * image_emb @ text_emb.T + logit_bias  # (B, B)
    z = 2 * torch.eye(len(logits), device=logits.device, dtype=logits.dtype) - 1  # +1 on the diagonal, -1 elsewhere
    return -F.logsigmoid(z * logits).sum(dim=1).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_siglip_loss", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
B = 4
eye = torch.eye(B)
# Orthogonal pairs: each positive has logit t + b, each negative has logit b.
t, bias = 10.0, -10.0
expected = (B * math.log1p(math.exp(-(t + bias))) + (B * B - B) * math.log1p(math.exp(bias))) / B
checks.check_close(siglip_loss(eye, 3 * eye, math.log(t), bias), torch.tensor(expected),
                   name="siglip_loss on orthogonal pairs, t = 10, b = -10",
                   hint="positives (label +1) only on the diagonal; sum over all B*B pairs, divide by B")
g = torch.Generator().manual_seed(1)
a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
scale, bias_t = torch.tensor(1.0, requires_grad=True), torch.tensor(-2.0, requires_grad=True)
siglip_loss(a, b, scale, bias_t).backward()
checks.check_true(scale.grad is not None and bias_t.grad is not None and bias_t.grad != 0,
                  "no gradient reached logit_scale or logit_bias", hint="keep them as tensors in the computation")
print("siglip_loss: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import vlm as ref
g = torch.Generator().manual_seed(env.grading_seed() + 1)
for _ in range(5):
    B, D = int(torch.randint(2, 17, (1,), generator=g)), int(torch.randint(2, 33, (1,), generator=g))
    a, b = torch.randn(B, D, generator=g) * 2, torch.randn(B, D, generator=g) * 0.5
    s, bb = float(torch.rand(1, generator=g)) * 3, float(torch.randn(1, generator=g)) * 6
    checks.check_close(siglip_loss(a, b, s, bb), ref.siglip_loss(a, b, s, bb),
                       name=f"siglip_loss, B={B}, D={D}, logit_scale={s:.2f}, logit_bias={bb:.2f}")
    perm = torch.randperm(B, generator=g)
    checks.check_close(siglip_loss(a[perm], b[perm], s, bb), siglip_loss(a, b, s, bb),
                       name="siglip_loss after shuffling the pairs together (must not change)")
checks.check_on_meta(lambda: siglip_loss(torch.empty(4, 8, device="meta"), torch.empty(4, 8, device="meta"), 1.0, -2.0),
                     name="siglip_loss", hint="create the labels on the logits' device (torch.eye(B, device=logits.device))")
# The loss of one pair is a function of that pair only: changing an off-diagonal caption's match can
# only matter through a negative term.
x = torch.eye(3)
y = torch.eye(3)[[0, 1, 2]]
y_swapped = torch.eye(3)[[0, 2, 1]]  # images 1 and 2 now look like each other's caption
low, high = siglip_loss(x, y, math.log(10.0), -5.0), siglip_loss(x, y_swapped, math.log(10.0), -5.0)
_ = checks.check_true(high > low, "swapping two captions must raise the loss (positives are on the diagonal only)")
### END HIDDEN TESTS

# %% [markdown]
# Both losses on batches of unrelated images and captions (random embeddings), at each paper's
# initial temperature. CLIP's loss lies above $\log B$, the cost of a uniform guess among $B$
# captions: at $t = 14.3$ random cosines already produce confident, wrong logits. SigLIP's is about
# 10 whatever the batch size: each image's own caption, scored $t \cdot 0 - 10$, costs about 10, and
# the $B - 1$ negatives cost almost nothing because the bias already says "no" to them.

# %% tags=["demo"]
g = torch.Generator().manual_seed(0)
for B in (8, 64, 512):
    a, b = torch.randn(B, 64, generator=g), torch.randn(B, 64, generator=g)
    print(f"B = {B:>3}:  CLIP {clip_loss(a, b, math.log(1 / 0.07)).item():6.3f} (log B = {math.log(B):.3f})"
          f"   SigLIP {siglip_loss(a, b, math.log(10.0), -10.0).item():6.3f}")

# %% [markdown]
# ## 2. A tiny CLIP on handwritten digits
#
# Our data: the bundled digits, each with a short caption. Captions come from templates; the ones used
# for training differ from the ones held out for testing, so a test caption is a phrasing the model
# has never read, made of words it has read.

# %% tags=["demo"]
train_x, train_y, test_x, test_y = vlm_train.digit_tensors()  # 16 x 16 digits, standardised
print("training images", tuple(train_x.shape), "| held-out images", tuple(test_x.shape))
for name, templates in (("training", vlm_train.TRAIN_TEMPLATES), ("held out", vlm_train.HELDOUT_TEMPLATES)):
    print(f"{name:>9}:", " | ".join(vlm_train.caption(7, t) for t in templates))
print("vocabulary:", len(vlm_train.VOCAB), "words;", "tokens of 'the digit 7':",
      vlm_train.tokenize(["the digit 7"])[0].tolist(), "(<eos> = 1, <pad> = 0)")

# %% [markdown]
# The image tower is the course `ViT` (16 × 16 digits, 4 × 4 patches, mean pooling, no head). The text
# tower, `TextTower` (from `vitcourse.models.vlm`), embeds the words, adds positions, runs a transformer block and keeps
# the feature of the `<eos>` token, as CLIP's text tower does.
#
# ### Exercise 3 — `TwoTower` (4 points)
#
# Join the two towers:
#
# - `self.image_tower`, `self.text_tower`: the towers given;
# - `self.image_proj`, `self.text_proj`: `nn.Linear` layers **without bias** from each tower's width to
#   `embed_dim`;
# - `self.logit_scale`: an `nn.Parameter` holding the scalar `init_logit_scale` (default $\log(1/0.07)$);
# - `encode_image(images)` and `encode_text(tokens)`: tower, projection, then unit length (B, embed_dim);
# - `forward(images, tokens)`: the pair `(encode_image(images), encode_text(tokens))`.
#
# The check trains your model with your `clip_loss` for a few seconds and asks it to recognise test
# digits from the held-out captions of the ten classes.

# %% nbgrader={"grade": false, "grade_id": "two_tower", "locked": false, "schema_version": 3, "solution": true, "task": false}
class TwoTower(nn.Module):
    """Image tower + text tower, each projected (no bias) to embed_dim and L2-normalised; learned log-temperature."""

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module, image_dim: int, text_dim: int,
                 embed_dim: int, init_logit_scale: float = math.log(1 / 0.07)):
        super().__init__()
        ### BEGIN SOLUTION
        self.image_tower, self.text_tower = image_tower, text_tower
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        ### END SOLUTION

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return F.normalize(self.image_proj(self.image_tower(images)), dim=-1)
        ### END SOLUTION

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return F.normalize(self.text_proj(self.text_tower(tokens)), dim=-1)
        ### END SOLUTION

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        ### BEGIN SOLUTION
        return self.encode_image(images), self.encode_text(tokens)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_two_tower", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
train_x, train_y, test_x, test_y = vlm_train.digit_tensors()
model = vlm_train.make_two_tower(seed=0, two_tower_cls=TwoTower)
checks.check_close(model.logit_scale.detach(), torch.tensor(math.log(1 / 0.07)), name="initial logit_scale",
                   hint="store the logarithm of 1/0.07, not 1/0.07")
checks.check_true(model.image_proj.bias is None and model.text_proj.bias is None, "the projections must have no bias")
img, txt = model(test_x[:5], vlm_train.tokenize(["the digit 7"] * 5))
checks.check_shape(img, (5, 64), name="encode_image output")
checks.check_close(txt.norm(dim=-1), torch.ones(5), name="norms of the text embeddings", hint="return unit vectors")
# Training behaviour: 120 steps with your TwoTower and your clip_loss. Over seeds 0-9 the reference reaches a
# zero-shot accuracy of 0.36 to 0.72 (chance: 0.10), gains 0.25 to 0.64 in recall@1, and ends with a temperature
# multiplier exp(logit_scale) of 2.99 to 3.29 (it starts at 3).
steps, zero_shot_min, recall_gain_min, multiplier_min = 120, 0.25, 0.15, 2.7
model = vlm_train.make_two_tower(seed=env.grading_seed(), depth=1, two_tower_cls=TwoTower,
                                 init_logit_scale=math.log(3.0))
before = vlm_train.evaluate_two_tower(model, test_x, test_y)
run = vlm_train.train_two_tower(model, train_x, train_y, steps=steps, batch_size=128, lr=3e-3,
                                seed=env.grading_seed(), loss_fn=clip_loss)
after = vlm_train.evaluate_two_tower(model, test_x, test_y)
multiplier = model.logit_scale.exp().item()
print(f"{steps} steps in {run['seconds']:.1f} s: zero-shot accuracy {after['zero_shot']:.2f}, "
      f"recall@1 {before['recall_at_1']:.2f} -> {after['recall_at_1']:.2f}, temperature multiplier {multiplier:.2f}")
checks.check_true(after["zero_shot"] >= zero_shot_min,
                  f"zero-shot accuracy on held-out digits is {after['zero_shot']:.2f}; it should reach {zero_shot_min}",
                  hint="check clip_loss (matches on the diagonal, exp of logit_scale) and that both embeddings are normalised")
checks.check_true(after["recall_at_1"] >= before["recall_at_1"] + recall_gain_min,
                  f"image->caption recall@1 went from {before['recall_at_1']:.2f} to {after['recall_at_1']:.2f}; "
                  f"training should add at least {recall_gain_min}")
checks.check_true(multiplier >= multiplier_min,
                  f"the temperature multiplier fell from 3 to {multiplier:.2f}: training should sharpen it, not flatten it",
                  hint="multiply the cosines by exp(logit_scale); dividing makes the model push logit_scale down")
### BEGIN HIDDEN TESTS
from vitcourse.models import vlm as ref
g = torch.Generator().manual_seed(env.grading_seed() + 2)
for _ in range(3):
    di, dt, de = (int(v) for v in torch.randint(2, 12, (3,), generator=g))
    s0 = float(torch.rand(1, generator=g)) * 3
    mine = TwoTower(nn.Linear(3, di), nn.Embedding(7, dt), di, dt, de, init_logit_scale=s0)
    theirs = ref.TwoTower(nn.Linear(3, di), nn.Embedding(7, dt), di, dt, de, init_logit_scale=s0)
    theirs.load_state_dict(mine.state_dict())
    x, tok = torch.randn(4, 3, generator=g), torch.randint(0, 7, (4,), generator=g)
    for m, t in zip(mine(x, tok), theirs(x, tok)):
        checks.check_close(m, t, name=f"TwoTower(image_dim={di}, text_dim={dt}, embed_dim={de}) embeddings")
    checks.check_close(mine.logit_scale.detach(), torch.tensor(s0), name="logit_scale with init_logit_scale given")
### END HIDDEN TESTS

# %% [markdown]
# Now a run of our own, longer with the `full` budget, and what it learned: for a few held-out digits,
# the most similar of the ten classes' captions in a phrasing never used in training.

# %% tags=["demo"]
steps = 300 if BUDGET == "full" else 120
model = vlm_train.make_two_tower(seed=0, depth=1, two_tower_cls=TwoTower, init_logit_scale=math.log(3.0))
run = vlm_train.train_two_tower(model, train_x, train_y, steps=steps, batch_size=128, lr=3e-3, seed=0,
                                loss_fn=clip_loss)
result = vlm_train.evaluate_two_tower(model, test_x, test_y)
print(f"{steps} steps, {run['seconds']:.0f} s: zero-shot accuracy {result['zero_shot']:.2f}, "
      f"recall@1 {result['recall_at_1']:.2f}, temperature multiplier {model.logit_scale.exp().item():.2f}")
model.eval()
with torch.no_grad():
    prompts, prompt_labels = vlm_train.class_prompts(vlm_train.HELDOUT_TEMPLATES[:1])
    sims = model.encode_image(test_x[:8]) @ model.encode_text(prompts).T  # (8, 10)
titles = [vlm_train.caption(int(prompt_labels[k]), "{num}") for k in sims.argmax(dim=1)]
viz.show_images(test_x[:8] * 0.3 + 0.3, titles=[f"'... digit {t}'" for t in titles], ncols=8, size=1.3);

# %% [markdown]
# ## 3. What a language model receives
#
# A LLaVA-style model does not pool the ViT's output. It keeps the patch tokens, maps each one to the
# language model's width with a small MLP, and writes them into the language model's input sequence
# in place of an `<image>` placeholder. LLaVA-1.5 uses CLIP ViT-L/14 at 336 pixels: a 24 × 24 grid,
# 576 patch tokens of width 1024 (the class token is dropped), projected to 4096 for a 7B language
# model. The shapes, with the course ViT built on PyTorch's `meta` device (no memory, no arithmetic):

# %% tags=["demo"]
with torch.device("meta"):
    clip_l = ViT(img_size=336, patch_size=14, embed_dim=1024, depth=24, num_heads=16, num_classes=0,
                 pre_norm=True, norm_eps=1e-5, act_layer="quick_gelu")
    pixels = torch.empty(1, 3, 336, 336)
    vit_tokens = clip_l.forward_features(pixels)
print("pixels          ", tuple(pixels.shape))
print("ViT tokens      ", tuple(vit_tokens.shape), "  (1 CLS + 24 x 24 patches)")
print("patch tokens    ", tuple(vit_tokens[:, 1:].shape))

# %% [markdown]
# Higher resolutions give many more tokens, and every token costs the language model compute at every
# layer. InternVL therefore merges each 2 × 2 neighbourhood of patch tokens into one token four times
# as wide (a "pixel shuffle" with scale 0.5), before the projector: a 448-pixel tile gives a 32 × 32
# grid, 1024 patch tokens, and the language model sees 256.
#
# ### Exercise 4 — `pixel_shuffle_tokens` (3 points)
#
# Write `pixel_shuffle_tokens(tokens, grid, factor)`: patch tokens `(B, h*w, C)` in row-major order on
# an `h × w` grid (`grid` is an int for a square grid or a pair `(h, w)`) become `(B, (h/f)*(w/f), f*f*C)`.
# Output token $(i, j)$, also row-major, is the concatenation of the input tokens at rows
# $f i + d_y$ and columns $f j + d_x$, in row-major $(d_y, d_x)$ order: top-left, top-right,
# bottom-left, bottom-right for $f = 2$. Raise a `ValueError` if the grid does not match the tokens or
# cannot be divided by `factor`.

# %% nbgrader={"grade": false, "grade_id": "pixel_shuffle", "locked": false, "schema_version": 3, "solution": true, "task": false}
def pixel_shuffle_tokens(tokens: torch.Tensor, grid, factor: int = 2) -> torch.Tensor:
    """(B, h*w, C) row-major patch tokens -> (B, (h/f)*(w/f), f*f*C), neighbourhoods in (dy, dx, channel) order."""
    ### BEGIN SOLUTION
    h, w = (grid, grid) if isinstance(grid, int) else grid
    B, N, C = tokens.shape
    if N != h * w or h % factor or w % factor:
        raise ValueError(f"{N} tokens on a {h}x{w} grid cannot be merged {factor}x{factor}")
    x = tokens.reshape(B, h // factor, factor, w // factor, factor, C)  # (B, i, dy, j, dx, C)
    x = x.permute(0, 1, 3, 2, 4, 5)  # (B, i, j, dy, dx, C)
    return x.reshape(B, (h // factor) * (w // factor), factor * factor * C)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_pixel_shuffle", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
tokens = torch.arange(4 * 4, dtype=torch.float32).reshape(1, 16, 1)  # token k holds the number k
merged = pixel_shuffle_tokens(tokens, 4, 2)
checks.check_shape(merged, (1, 4, 4), name="pixel_shuffle_tokens on a 4x4 grid, factor 2")
checks.check_equal(merged[0, 0].tolist(), [0.0, 1.0, 4.0, 5.0], name="merged token 0 (tokens 0, 1, 4, 5)",
                   hint="a neighbourhood is two tokens of one row and the two below them, not 4 consecutive tokens")
checks.check_equal(merged[0, 1].tolist(), [2.0, 3.0, 6.0, 7.0], name="merged token 1")
checks.check_raises(lambda: pixel_shuffle_tokens(torch.zeros(1, 17, 8), 4, 2), ValueError,
                    name="17 tokens (CLS left in) on a 4x4 grid")
print("pixel_shuffle_tokens: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import vlm as ref
g = torch.Generator().manual_seed(env.grading_seed() + 3)
for _ in range(5):
    f = int(torch.randint(1, 4, (1,), generator=g))
    hh, ww = (f * int(v) for v in torch.randint(1, 5, (2,), generator=g))
    B, C = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 7, (1,), generator=g))
    x = torch.randn(B, hh * ww, C, generator=g)
    grid = hh if hh == ww and bool(torch.randint(0, 2, (1,), generator=g)) else (hh, ww)
    checks.check_close(pixel_shuffle_tokens(x, grid, f), ref.pixel_shuffle_tokens(x, grid, f),
                       name=f"pixel_shuffle_tokens on a {hh}x{ww} grid, factor {f}, C={C}")
_ = checks.check_raises(lambda: pixel_shuffle_tokens(torch.zeros(1, 12, 2), (3, 4), 2), ValueError,
                        name="a 3x4 grid with factor 2")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5 — `Projector` (2 points)
#
# LLaVA-1.5 replaced the single linear layer of LLaVA by a two-layer MLP (`mlp2x_gelu`): Linear from
# the vision width to the language model's width, GELU, Linear from that width to itself. Write it as
# `Projector(in_dim, out_dim)` with layers named `linear_1` and `linear_2` (the names Hugging Face uses,
# so that real weights load) and exact GELU.

# %% nbgrader={"grade": false, "grade_id": "projector", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Projector(nn.Module):
    """(B, N, in_dim) -> (B, N, out_dim): linear_1 -> GELU -> linear_2 (LLaVA-1.5's mlp2x_gelu)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        ### BEGIN SOLUTION
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(out_dim, out_dim)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.linear_2(self.act(self.linear_1(x)))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_projector", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
proj = Projector(1024, 4096)
checks.check_shape(proj.linear_1.weight, (4096, 1024), name="linear_1.weight")
checks.check_shape(proj.linear_2.weight, (4096, 4096), name="linear_2.weight")
checks.check_shape(proj(torch.zeros(1, 5, 1024)), (1, 5, 4096), name="Projector(1024, 4096) on (1, 5, 1024)")
print("Projector: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import vlm as ref
g = torch.Generator().manual_seed(env.grading_seed() + 4)
for _ in range(3):
    i, o = (int(v) for v in torch.randint(2, 40, (2,), generator=g))
    mine, theirs = Projector(i, o), ref.Projector(i, o)
    theirs.load_state_dict(mine.state_dict())
    x = torch.randn(2, 3, i, generator=g) * 3
    checks.check_close(mine(x), theirs(x), name=f"Projector({i}, {o})", hint="Linear -> exact GELU -> Linear")
### END HIDDEN TESTS

# %% [markdown]
# The whole path from pixels to what the language model reads, for LLaVA-1.5 (no merging) and for an
# InternVL-style tile (2 × 2 merging; InternVL also puts a LayerNorm in front of its MLP):

# %% tags=["demo"]
with torch.device("meta"):
    llava_in = Projector(1024, 4096)(vit_tokens[:, 1:])
    intern_vit = ViT(img_size=448, patch_size=14, embed_dim=1024, depth=24, num_heads=16, num_classes=0)
    tile = intern_vit.forward_features(torch.empty(1, 3, 448, 448))[:, 1:]
    merged = pixel_shuffle_tokens(tile, 32, 2)
    intern_in = Projector(4 * 1024, 4096)(merged)
print("LLaVA-1.5   336 px:", tuple(vit_tokens[:, 1:].shape), "-> projector ->", tuple(llava_in.shape))
print("InternVL    448 px:", tuple(tile.shape), "-> 2x2 merge ->", tuple(merged.shape), "-> projector ->",
      tuple(intern_in.shape))

# %% [markdown]
# ## 4. Token budgets of real models
#
# How many visual tokens a model spends depends on how it treats resolution:
#
# - **LLaVA-1.5** pads every image to a square and resizes it to 336 × 336: always 576 tokens, whatever
#   the original size.
# - **InternVL** (1.5 to 2.5) cuts the image into 448-pixel tiles. It chooses a grid of *columns ×
#   rows* (between `min_tiles` and `max_tiles` tiles; 1 and 12 in the released models) whose aspect
#   ratio is closest to the image's, resizes the image to that grid and adds a **thumbnail**, the whole
#   image at 448 pixels, whenever there is more than one tile. Each tile or thumbnail gives 256 tokens.
# - **Qwen2-VL** keeps the image near its own size: each side is rounded to a multiple of 28
#   (patch 14 × merge 2) and the area is kept within `[min_pixels, max_pixels]`; its 14-pixel patches
#   are then merged 2 × 2.
#
# ### Exercise 6 — `internvl_tile_grid` (2 points)
#
# Return `(rows, columns)` for a `height × width` image, following InternVL's rule exactly:
#
# 1. candidates are all grids with `min_tiles <= columns * rows <= max_tiles`, visited by increasing
#    tile count, and for equal counts by increasing columns, then rows;
# 2. a candidate whose aspect ratio `columns / rows` is strictly closer to `width / height` than the
#    best so far becomes the best;
# 3. a candidate exactly as close as the best replaces it when the image's area is more than half the
#    area its tiles cover: `height * width > 0.5 * img_size**2 * columns * rows`.
#
# Start from `(1, 1)` with an infinite distance.

# %% nbgrader={"grade": false, "grade_id": "tile_grid", "locked": false, "schema_version": 3, "solution": true, "task": false}
def internvl_tile_grid(height: int, width: int, min_tiles: int = 1, max_tiles: int = 12,
                       img_size: int = 448) -> tuple:
    """(rows, columns) of InternVL's dynamic tiling for a height x width image."""
    ### BEGIN SOLUTION
    aspect = width / height
    grids = sorted(((c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1)
                    if min_tiles <= c * r <= max_tiles), key=lambda g: g[0] * g[1])
    best, best_diff = (1, 1), float("inf")
    for c, r in grids:
        diff = abs(aspect - c / r)
        if diff < best_diff:
            best, best_diff = (c, r), diff
        elif diff == best_diff and height * width > 0.5 * img_size * img_size * c * r:
            best = (c, r)
    return best[1], best[0]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_tile_grid", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(internvl_tile_grid(448, 448), (1, 1), name="internvl_tile_grid(448, 448)")
checks.check_equal(internvl_tile_grid(300, 600), (1, 2), name="internvl_tile_grid(300, 600): one row, two columns")
checks.check_equal(internvl_tile_grid(1080, 1920), (2, 4), name="internvl_tile_grid(1080, 1920)",
                   hint="16:9 is closest to 4 columns x 2 rows among grids of at most 12 tiles")
checks.check_equal(internvl_tile_grid(800, 800), (2, 2), name="internvl_tile_grid(800, 800)",
                   hint="1x1, 2x2 and 3x3 are equally close: a later grid wins while the image covers over half its tiles")
print("internvl_tile_grid: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import vlm as ref
g = torch.Generator().manual_seed(env.grading_seed() + 5)
for _ in range(40):
    h, w = (int(v) for v in torch.randint(20, 4000, (2,), generator=g))
    lo = int(torch.randint(1, 4, (1,), generator=g))
    hi = lo + int(torch.randint(0, 12, (1,), generator=g))
    size = [224, 336, 448][int(torch.randint(0, 3, (1,), generator=g))]
    checks.check_equal(internvl_tile_grid(h, w, lo, hi, size), ref.internvl_tile_grid(h, w, lo, hi, size),
                       name=f"internvl_tile_grid({h}, {w}, min_tiles={lo}, max_tiles={hi}, img_size={size})")
for k in range(1, 5):  # exact aspect ratios: ties decided by the area rule
    side = int(torch.randint(100, 900, (1,), generator=g))
    checks.check_equal(internvl_tile_grid(side, k * side), ref.internvl_tile_grid(side, k * side),
                       name=f"internvl_tile_grid({side}, {k * side})")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 7 — `visual_token_count` (3 points)
#
# Write `visual_token_count(height, width, scheme, ...)` for one image:
#
# - `"llava"`: `(img_size // patch_size // merge) ** 2` with `img_size` 336 and `merge` 1 by default;
#   the class token is dropped.
# - `"internvl"`: tiles from your `internvl_tile_grid` (with `img_size` 448 by default), plus one
#   thumbnail if `thumbnail` is true and there is more than one tile; each gives
#   `(img_size // patch_size // merge) ** 2` tokens with `merge` 2 by default.
# - `"qwen2vl"`: resize with factor `patch_size * merge` (`merge` 2 by default): round each side to the
#   nearest multiple of the factor (at least one factor; Python's `round`); if the area then exceeds
#   `max_pixels`, divide both sides by $\beta = \sqrt{hw / \text{max\_pixels}}$ (the *original* $h, w$)
#   and round down to multiples; if it is below `min_pixels`, multiply by
#   $\beta = \sqrt{\text{min\_pixels} / hw}$ and round up. Tokens: `(h' // patch_size) * (w' // patch_size) // merge**2`.
#
# Raise a `ValueError` for another scheme.

# %% nbgrader={"grade": false, "grade_id": "token_count", "locked": false, "schema_version": 3, "solution": true, "task": false}
def visual_token_count(height: int, width: int, scheme: str = "llava", *, patch_size: int = 14,
                       img_size=None, merge=None, min_tiles: int = 1, max_tiles: int = 12,
                       thumbnail: bool = True, min_pixels: int = 4 * 28 * 28,
                       max_pixels: int = 16384 * 28 * 28) -> int:
    """Visual tokens a language model receives for one image under LLaVA-1.5, InternVL or Qwen2-VL rules."""
    ### BEGIN SOLUTION
    if scheme == "llava":
        img_size, merge = img_size or 336, merge or 1
        return (img_size // patch_size // merge) ** 2
    if scheme == "internvl":
        img_size, merge = img_size or 448, merge or 2
        rows, cols = internvl_tile_grid(height, width, min_tiles, max_tiles, img_size)
        tiles = rows * cols + (1 if thumbnail and rows * cols > 1 else 0)
        return tiles * (img_size // patch_size // merge) ** 2
    if scheme == "qwen2vl":
        merge = merge or 2
        f = patch_size * merge
        h, w = max(f, round(height / f) * f), max(f, round(width / f) * f)
        if h * w > max_pixels:
            beta = math.sqrt(height * width / max_pixels)
            h, w = max(f, math.floor(height / beta / f) * f), max(f, math.floor(width / beta / f) * f)
        elif h * w < min_pixels:
            beta = math.sqrt(min_pixels / (height * width))
            h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
        return (h // patch_size) * (w // patch_size) // (merge * merge)
    raise ValueError(f"unknown scheme {scheme!r}: use 'llava', 'internvl' or 'qwen2vl'")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_token_count", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
checks.check_equal(visual_token_count(1080, 1920, "llava"), 576, name="LLaVA-1.5, any image",
                   hint="24 x 24 patches; the class token is not passed on")
checks.check_equal(visual_token_count(448, 448, "internvl"), 256, name="InternVL, one 448-pixel tile (no thumbnail)")
checks.check_equal(visual_token_count(1080, 1920, "internvl"), 9 * 256, name="InternVL, 1920x1080",
                   hint="4 x 2 tiles plus the thumbnail")
checks.check_equal(visual_token_count(1080, 1920, "qwen2vl"), 2691, name="Qwen2-VL, 1920x1080",
                   hint="1080 -> 1092 and 1920 -> 1932 (multiples of 28), then 78 x 138 patches merged 2 x 2")
checks.check_raises(lambda: visual_token_count(10, 10, "blip"), ValueError, name="an unknown scheme")
print("visual_token_count: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import vlm as ref
g = torch.Generator().manual_seed(env.grading_seed() + 6)
checks.check_equal(visual_token_count(336, 336, "llava", patch_size=14), 576, name="LLaVA-1.5")
for _ in range(30):
    h, w = (int(v) for v in torch.randint(30, 5000, (2,), generator=g))
    scheme = ["llava", "internvl", "qwen2vl"][int(torch.randint(0, 3, (1,), generator=g))]
    kw = dict(patch_size=[14, 16][int(torch.randint(0, 2, (1,), generator=g))])
    if scheme == "llava":
        kw["img_size"] = [224, 336, 448][int(torch.randint(0, 3, (1,), generator=g))]
    if scheme == "internvl":
        kw.update(min_tiles=int(torch.randint(1, 3, (1,), generator=g)), max_tiles=int(torch.randint(3, 13, (1,), generator=g)),
                  thumbnail=bool(torch.randint(0, 2, (1,), generator=g)), merge=int(torch.randint(1, 3, (1,), generator=g)))
    if scheme == "qwen2vl":
        if max(h, w) / min(h, w) > 200:
            continue
        kw.update(min_pixels=int(torch.randint(4, 300, (1,), generator=g)) * 784,
                  max_pixels=[256, 1280, 16384][int(torch.randint(0, 3, (1,), generator=g))] * 784)
    checks.check_equal(visual_token_count(h, w, scheme, **kw), ref.visual_token_count(h, w, scheme, **kw),
                       name=f"visual_token_count({h}, {w}, {scheme!r}, {kw})")
### END HIDDEN TESTS

# %% [markdown]
# The budgets side by side, for a few common image sizes:

# %% tags=["demo"]
sizes = {"square 448": (448, 448), "phone photo 3024x4032": (4032, 3024), "HD 1920x1080": (1080, 1920),
         "document 1700x2200": (2200, 1700), "thumbnail 320x240": (240, 320)}
print(f"{'image':<24} {'LLaVA-1.5':>9} {'InternVL':>9} {'Qwen2-VL':>9}")
for name, (h, w) in sizes.items():
    rows, cols = internvl_tile_grid(h, w)
    print(f"{name:<24} {visual_token_count(h, w, 'llava'):>9} {visual_token_count(h, w, 'internvl'):>9} "
          f"{visual_token_count(h, w, 'qwen2vl'):>9}   (InternVL grid {rows}x{cols})")

# %% [markdown]
# ## Takeaways
#
# - A contrastive model aligns two towers in one space. CLIP's loss is a softmax over the batch in both
#   directions; SigLIP's treats every image-caption pair as its own binary decision, with a learned
#   bias. Both compare unit vectors scaled by a learned temperature.
# - Zero-shot classification is retrieval among captions: embed one caption per class and pick the
#   closest. Our digit model reads phrasings it never saw in training.
# - A generative VLM keeps the patch tokens. Merging 2 × 2 neighbourhoods into wider tokens and a small
#   MLP to the language model's width are all that sits between the ViT and the language model.
# - Token budgets follow from how resolution is handled: a fixed square (LLaVA-1.5), tiles plus a
#   thumbnail (InternVL) or the native size rounded to the merge grid (Qwen2-VL).
