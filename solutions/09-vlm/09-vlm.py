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
#    `siglip_loss`), and see what each makes of two captions that are both right;
# 2. join a course ViT and a small text tower into a `TwoTower` model and train it on the digits with
#    captions, until it recognises digits from captions it has never seen;
# 3. merge neighbouring patch tokens as InternVL does (`pixel_shuffle_tokens`), project them to a
#    language model's width (`Projector`) and put them in the prompt in place of `<image>`
#    (`insert_image_tokens`);
# 4. count the visual tokens that LLaVA-1.5, InternVL and Qwen2-VL hand their language model
#    (`internvl_tile_grid`, `visual_token_count`), and judge what each of them sees of a panorama.

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

import math
import time
import torch
import torch.nn.functional as F
from torch import nn
from vitcourse import checks, diagrams, env, viz
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
# CLIP starts it at $\log(1/0.07)$, a temperature of 0.07, and during training never lets $t$ pass 100
# (the training loop of this chapter caps it there too).

# %% tags=["demo"]
diagrams.contrastive_targets(batch=5);

# %% [markdown]
# ### Exercise 1 — `clip_loss` (2 points)
#
# Write `clip_loss(image_emb, text_emb, logit_scale)`: embeddings of shape `(B, D)` (row $i$ of each
# is a matching pair, not yet normalised); `logit_scale` the logarithm of $t$, given either as a Python
# float or as a 0-d tensor (a model's parameter, which must receive a gradient). Return the loss above
# as a 0-d tensor. `F.normalize` and `F.cross_entropy` do most of the work.
#
# Two things the checks look at besides the value. `torch.as_tensor(logit_scale).exp()` handles both
# kinds of `logit_scale` and keeps a parameter in the computation graph; `math.exp` turns a tensor into
# a plain float, and its gradient is lost. The embeddings may live on any device (a GPU on Colab, the
# `meta` device in the checks): a tensor you create, like the targets of the cross-entropy, must be
# created on theirs (`device=logits.device`).

# %% nbgrader={"grade": false, "grade_id": "clip_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric cross-entropy over the (B, B) matrix exp(logit_scale) * cos(image_i, text_j)."""
    ### BEGIN SOLUTION
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = torch.as_tensor(logit_scale).exp() * image_emb @ text_emb.T  # (B, B)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_clip_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from vitcourse.models import vlm as ref


def check_clip_loss():
    eye = torch.eye(4)
    perfect = clip_loss(eye, 5 * eye, math.log(10.0))  # orthogonal pairs: cos 1 on the diagonal, 0 elsewhere
    checks.check_shape(perfect, (), name="clip_loss of 4 pairs", hint="return the mean over the batch: one number")
    checks.check_close(perfect, torch.tensor(-math.log(math.exp(10) / (math.exp(10) + 3))),
                       name="clip_loss of orthogonal pairs, logit_scale = log 10",
                       mistakes={"leaving the embeddings unnormalised (5 x the identity has cosines of 5)":
                                 torch.tensor(-math.log(math.exp(50) / (math.exp(50) + 3))),
                                 "multiplying by logit_scale itself instead of exp(logit_scale)":
                                 torch.tensor(-math.log(10 / (10 + 3))),
                                 "dividing the cosines by exp(logit_scale)":
                                 torch.tensor(-math.log(math.exp(0.1) / (math.exp(0.1) + 3))),
                                 "targets other than the diagonal": torch.tensor(math.log(math.exp(10) + 3))},
                       hint="normalise both embeddings (F.normalize(..., dim=-1)) and multiply the cosines by "
                            "exp(logit_scale)")
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    cos, target = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T, torch.arange(6)
    both = lambda logits, t: (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2
    checks.check_close(clip_loss(a, b, 1.0), ref.clip_loss(a, b, 1.0), name="clip_loss of 6 random pairs, logit_scale = 1",
                       mistakes={"the rows alone (image -> caption, one direction)": F.cross_entropy(math.e * cos, target),
                                 "the columns alone (caption -> image, one direction)":
                                 F.cross_entropy(math.e * cos.T, target),
                                 "dividing the cosines by exp(logit_scale)": both(cos / math.e, target),
                                 "targets other than the diagonal": both(math.e * cos, target.flip(0))},
                       hint="average two cross-entropies, over the rows (each image picks its caption) and over the "
                            "columns (each caption picks its image); the match of row i is column i")
    scale = torch.tensor(1.0, requires_grad=True)
    clip_loss(a, b, scale).backward()
    checks.check_grad_flows(scale, name="logit_scale given as a tensor",
                            hint="torch.as_tensor(logit_scale).exp(), not math.exp(logit_scale) or .item()")
    checks.check_dtype(clip_loss(a.double(), b.double(), 1.0), torch.float64, name="clip_loss of float64 embeddings",
                       hint="keep the embeddings' dtype")
    checks.check_on_meta(lambda: clip_loss(torch.empty(4, 8, device="meta"), torch.empty(4, 8, device="meta"), 1.0),
                         name="clip_loss", shape=(),
                         hint="create the targets on the logits' device: torch.arange(B, device=logits.device)")


checks.run(check_clip_loss, "Exercise 1 (clip_loss)",
           hint="logit_scale is a float or a 0-d tensor: torch.as_tensor(logit_scale).exp() handles both and keeps "
                "the gradient (math.exp and .item() do not)")
### BEGIN HIDDEN TESTS
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
_ = checks.check_on_meta(lambda: clip_loss(torch.empty(5, 3, device="meta"), torch.empty(5, 3, device="meta"),
                                       torch.tensor(1.0)), name="clip_loss", shape=(),
                     hint="create the targets on the logits' device (torch.arange(B, device=logits.device))")
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 — `siglip_loss` (2 points)
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
# `clip_loss`: `logit_scale` is $\log t$, and both it and `logit_bias` may be floats or 0-d tensors
# that must receive gradients; the labels $z$ are a tensor you create, on the embeddings' device and in
# their dtype. `F.logsigmoid` is numerically safe.

# %% nbgrader={"grade": false, "grade_id": "siglip_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def siglip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale, logit_bias) -> torch.Tensor:
    """-(1/B) sum_ij log sigmoid(z_ij (exp(logit_scale) cos(image_i, text_j) + logit_bias)), z = +1 on the diagonal."""
    ### BEGIN SOLUTION
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = torch.as_tensor(logit_scale).exp() * image_emb @ text_emb.T + logit_bias  # (B, B)
    z = 2 * torch.eye(len(logits), device=logits.device, dtype=logits.dtype) - 1  # +1 on the diagonal, -1 elsewhere
    return -F.logsigmoid(z * logits).sum(dim=1).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_siglip_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_siglip_loss():
    B, eye, t, bias = 4, torch.eye(4), 10.0, -10.0
    # Orthogonal pairs: each of the B positives has logit t + b, each of the B * B - B negatives logit b.
    positive, negative = math.log1p(math.exp(-(t + bias))), math.log1p(math.exp(bias))
    got = siglip_loss(eye, 3 * eye, math.log(t), bias)
    checks.check_shape(got, (), name="siglip_loss of 4 pairs", hint="return one number")
    checks.check_close(got, torch.tensor((B * positive + (B * B - B) * negative) / B),
                       name="siglip_loss of orthogonal pairs, t = 10, b = -10",
                       mistakes={"labels +1 everywhere (every pair a positive)":
                                 torch.tensor((B * positive + (B * B - B) * math.log1p(math.exp(-bias))) / B),
                                 "labels 1 and 0 instead of +1 and -1 (the negatives cost log 2 each)":
                                 torch.tensor((B * positive + (B * B - B) * math.log(2)) / B),
                                 "averaging over all B * B pairs instead of dividing the sum by B":
                                 torch.tensor((B * positive + (B * B - B) * negative) / B ** 2),
                                 "subtracting the bias": torch.tensor((B * math.log1p(math.exp(-(t - bias)))
                                                                       + (B * B - B) * math.log1p(math.exp(-bias))) / B),
                                 "leaving the embeddings unnormalised (3 x the identity has cosines of 3)":
                                 torch.tensor((B * math.log1p(math.exp(-(3 * t + bias))) + (B * B - B) * negative) / B)},
                       hint="labels z = +1 on the diagonal and -1 elsewhere; sum log sigmoid(z * logits) over all "
                            "B * B pairs and divide by B")
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    cos, z = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T, 2 * torch.eye(5) - 1
    checks.check_close(siglip_loss(a, b, 1.0, -2.0), ref.siglip_loss(a, b, 1.0, -2.0),
                       name="siglip_loss of 5 random pairs, logit_scale = 1, logit_bias = -2",
                       mistakes={"subtracting the bias": -F.logsigmoid(z * (math.e * cos + 2.0)).sum(1).mean(),
                                 "leaving the embeddings unnormalised": -F.logsigmoid(z * (math.e * a @ b.T - 2.0)).sum(1).mean()},
                       hint="logits = exp(logit_scale) * cosines + logit_bias")
    scale, bias_t = torch.tensor(1.0, requires_grad=True), torch.tensor(-2.0, requires_grad=True)
    siglip_loss(a, b, scale, bias_t).backward()
    checks.check_grad_flows(scale, name="logit_scale", hint="torch.as_tensor(logit_scale).exp(), not math.exp")
    checks.check_grad_flows(bias_t, name="logit_bias", hint="add logit_bias as it is given (no float() or .item())")
    checks.check_dtype(siglip_loss(a.double(), b.double(), 1.0, -2.0), torch.float64,
                       name="siglip_loss of float64 embeddings", hint="create the labels with dtype=logits.dtype")
    checks.check_on_meta(lambda: siglip_loss(torch.empty(4, 8, device="meta"), torch.empty(4, 8, device="meta"), 1.0, -2.0),
                         name="siglip_loss", shape=(),
                         hint="create the labels on the logits' device: torch.eye(B, device=logits.device)")


checks.run(check_siglip_loss, "Exercise 2 (siglip_loss)",
           hint="logit_scale and logit_bias are floats or 0-d tensors: torch.as_tensor(logit_scale).exp() and a plain "
                "+ logit_bias keep their gradients")
### BEGIN HIDDEN TESTS
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
_ = checks.check_on_meta(lambda: siglip_loss(torch.empty(3, 5, device="meta"), torch.empty(3, 5, device="meta"),
                                         torch.tensor(1.0), torch.tensor(-2.0)), name="siglip_loss", shape=(),
                     hint="create the labels on the logits' device (torch.eye(B, device=logits.device))")
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
# ### Question 1 — two captions that are both right
#
# *Written answer, 2 points, scored by your instructor.*
#
# Contrastive training treats every other caption of the batch as wrong for an image. In a batch of
# digits that is often false: two images of a 7 may well get the same caption. Take the simplest case,
# eight pairs whose embeddings are perfect (orthogonal one-hot vectors) except that images 0 and 1 are
# the same digit with the same caption, so $x_0 = x_1$ and $y_0 = y_1$.
#
# **Predict** before you run the cell below: as the multiplier $t$ grows from 1 to 1000, what happens
# to CLIP's loss of this batch, and to SigLIP's (bias fixed at $b = -10$)? Does either stay bounded?
# **Then run it** and explain what you see: which terms of each loss do the two duplicates produce, and
# what would training do to $t$ under each loss if batches often held such pairs?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_false_negatives", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# **Prediction**
#
# ### BEGIN SOLUTION
# CLIP's loss falls as $t$ grows but stops at a floor above zero; SigLIP's loss falls at first, then
# grows without bound once $t$ is large.
# ### END SOLUTION
#
# **What happened, and why**
#
# ### BEGIN SOLUTION
# CLIP: rows 0 and 1 each have two columns with cosine 1, their own caption and the duplicate. Their
# softmax can at best split the probability in half, so each of those rows costs at least $\log 2$ and
# the loss tends to $2 \log 2 / 8 \approx 0.17$ (the same in the column direction) instead of 0; every
# other row goes to 0. The floor does not depend on $t$, so CLIP still rewards a larger $t$.
#
# SigLIP: at $t = 1$ every positive still costs about $-\log \sigma(t + b) \approx 9$, so the loss starts
# high and falls until $t \approx 10$. But the pairs (0, 1) and (1, 0) are negatives with cosine 1,
# logit $t + b$, and each costs $\log(1 + e^{t + b}) \approx t + b$ once $t > 10$: from there the loss
# grows linearly with $t$, about $2(t - 10)/8$ (22.5 at $t = 100$). The sigmoid loss charges each false negative in full, so a batch that often holds
# such pairs pushes $t$ down (or pushes the duplicate captions apart, which is impossible when they
# are identical): SigLIP is more sensitive than CLIP to negatives that are not really negative.
#
# **Rubric** (2 points). 1 point: the prediction is stated before the result, and the explanation
# says that CLIP's loss approaches a positive floor (about $\log 2$ per affected row, 0.17 for the
# batch) because a softmax row with two equally good columns can give each at most half. 1 point:
# SigLIP's loss grows about linearly in $t$ because each false negative's logit $t + b$ is charged by
# its own sigmoid term, and the consequence is named (pressure on $t$ to stay low, or on the towers
# to separate the duplicates). A wrong prediction loses nothing if the explanation is right.
# ### END SOLUTION

# %% tags=["demo"]
x = torch.eye(8)
x[1] = x[0]  # images 0 and 1 show the same digit ...
y = x.clone()  # ... and get the same caption
print(f"{'t':>6} {'CLIP':>8} {'SigLIP, b = -10':>16}")
for t in (1, 10, 30, 100, 1000):
    print(f"{t:>6} {clip_loss(x, y, math.log(t)).item():8.3f} {siglip_loss(x, y, math.log(t), -10.0).item():16.3f}")
print(f"CLIP's floor 2 log 2 / 8 = {2 * math.log(2) / 8:.3f}")

# %% [markdown]
# ## 2. A tiny CLIP on handwritten digits
#
# Our data: the bundled digits, each with a short caption. Captions come from templates; the ones used
# for training differ from the ones held out for testing, so a test caption is a phrasing the model
# has never read, made of words it has read.

# %%
train_x, train_y, test_x, test_y = vlm_train.digit_tensors()  # 16 x 16 digits, standardised
print("training images", tuple(train_x.shape), "| held-out images", tuple(test_x.shape))
for name, templates in (("training", vlm_train.TRAIN_TEMPLATES), ("held out", vlm_train.HELDOUT_TEMPLATES)):
    print(f"{name:>9}:", " | ".join(vlm_train.caption(7, t) for t in templates))
print("vocabulary:", len(vlm_train.VOCAB), "words;", "tokens of 'the digit 7':",
      vlm_train.tokenize(["the digit 7"])[0].tolist(), "(<eos> = 1, <pad> = 0)")

# %% [markdown]
# The two towers, and what each returns for a batch:
#
# - the image tower is the course `ViT` (16 × 16 digits, 4 × 4 patches, one block of width 64, no class
#   token, no head): `image_tower(images)` maps `(B, 1, 16, 16)` to `(B, 64)`, the mean of its patch
#   tokens;
# - the text tower, `TextTower` (`vitcourse.models.vlm`), embeds the words, adds positions, runs a transformer block
#   and keeps the feature of the `<eos>` token, as CLIP's text tower does: `text_tower(tokens)` maps
#   token ids `(B, L)` to `(B, 64)`.
#
# Neither output is normalised, and the two widths need not agree: the projections of the next exercise
# bring them into one space.
#
# ### Exercise 3 — `TwoTower` (3 points)
#
# Join the two towers:
#
# - `self.image_tower`, `self.text_tower`: the towers given;
# - `self.image_proj`, `self.text_proj`: `nn.Linear` layers **without bias** from each tower's width
#   (`image_dim`, `text_dim`) to `embed_dim`;
# - `self.logit_scale`: an `nn.Parameter` holding the scalar `init_logit_scale` (default $\log(1/0.07)$);
# - `encode_image(images)` and `encode_text(tokens)`: tower, projection, then unit length: `(B, embed_dim)`;
# - `forward(images, tokens)`: the pair `(encode_image(images), encode_text(tokens))`.
#
# The check then trains your model with your `clip_loss` (120 steps of 128 pairs; it prints how long they
# took) and asks it to recognise test digits from the held-out captions of the ten classes.

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


# %% nbgrader={"grade": true, "grade_id": "test_two_tower", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_two_tower():
    mine, theirs = (vlm_train.make_two_tower(seed=0, two_tower_cls=cls) for cls in (TwoTower, ref.TwoTower))
    checks.check_true(isinstance(getattr(mine, "logit_scale", None), nn.Parameter),
                      "TwoTower.logit_scale must be an nn.Parameter (training learns it)",
                      hint="self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))")
    checks.check_close(mine.logit_scale.detach(), torch.tensor(math.log(1 / 0.07)), name="initial logit_scale",
                       mistakes={"storing 1/0.07 itself instead of its logarithm": torch.tensor(1 / 0.07)},
                       hint="init_logit_scale is already the logarithm: store it as it is")
    checks.check_true(mine.image_proj.bias is None and mine.text_proj.bias is None, "the projections must have no bias",
                      hint="nn.Linear(image_dim, embed_dim, bias=False), and the same for the text")
    theirs.load_state_dict(mine.state_dict())
    images, tokens = test_x[:5], vlm_train.tokenize(["the digit 7", "a handwritten seven", "the number 1",
                                                     "the digit 0", "a photo of the number two"])
    with torch.no_grad():
        img, txt = mine(images, tokens)
        checks.check_close(img, theirs.encode_image(images), name="image embeddings (forward(...)[0])",
                           mistakes={"leaving out the normalisation": theirs.image_proj(theirs.image_tower(images))},
                           hint="encode_image: image_tower, then image_proj, then F.normalize(..., dim=-1)")
        checks.check_close(txt, theirs.encode_text(tokens), name="text embeddings (forward(...)[1])",
                           mistakes={"leaving out the normalisation": theirs.text_proj(theirs.text_tower(tokens))},
                           hint="encode_text: text_tower, then text_proj, then F.normalize(..., dim=-1)")
    # Training behaviour: 120 steps with your TwoTower and your clip_loss. Over seeds 0-9 the reference reaches a
    # zero-shot accuracy of 0.36 to 0.72 (chance: 0.10), gains 0.25 to 0.64 in recall@1, and ends with a
    # temperature multiplier exp(logit_scale) of 2.99 to 3.29 (it starts at 3).
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
                      hint="check that both embeddings are normalised and that clip_loss puts the matches on the diagonal")
    checks.check_true(after["recall_at_1"] >= before["recall_at_1"] + recall_gain_min,
                      f"image->caption recall@1 went from {before['recall_at_1']:.2f} to {after['recall_at_1']:.2f}; "
                      f"training should add at least {recall_gain_min}", hint="see the previous hint")
    checks.check_true(multiplier >= multiplier_min,
                      f"the temperature multiplier fell from 3 to {multiplier:.2f}: training should sharpen it, not flatten it",
                      hint="multiply the cosines by exp(logit_scale); dividing makes the model push logit_scale down")


checks.run(check_two_tower, "Exercise 3 (TwoTower)", after=[check_clip_loss])
### BEGIN HIDDEN TESTS
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
# the most similar of the ten classes' captions in a phrasing never used in training, next to the
# true digit.

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
predicted = prompt_labels[sims.argmax(dim=1)]
viz.show_images(test_x[:8] * 0.3 + 0.3, ncols=8, size=1.3,
                titles=[f"says {int(p)}\ntrue {int(y)}" for p, y in zip(predicted, test_y[:8])]);

# %% [markdown]
# ## 3. What a language model receives
#
# A language model reads one vector per text token, each of its own width. For it to read an image,
# the image has to become more such vectors, placed in the prompt where it says `<image>`. LLaVA-1.5
# builds them in the most direct way. Its vision encoder, CLIP's ViT-L/14, sees the image at 336 × 336
# pixels, a 24 × 24 grid of patches. LLaVA does not take the encoder's final output but the tokens that
# leave block 23 of its 24, before the last block and the final norm, and it throws the class token
# away: 576 patch tokens of width 1024 remain. A two-layer MLP takes each of them to the language
# model's width, 4096 for the 7B model, and the 576 vectors take the place of the one `<image>`
# placeholder. From there on the language model treats them like the embeddings of words.

# %% tags=["demo"]
with torch.device("meta"):
    clip_l = ViT(img_size=336, patch_size=14, embed_dim=1024, depth=24, num_heads=16, num_classes=0,
                 pre_norm=True, norm_eps=1e-5, act_layer="quick_gelu")
diagrams.llava_path(clip_l, ref.Projector(1024, 4096).to("meta"));

# %% [markdown]
# The shapes, with the course ViT built on PyTorch's `meta` device (no memory, no arithmetic). To read
# block 23's output, the copy below keeps the first 23 blocks and replaces the final norm by the identity:

# %% tags=["demo"]
with torch.device("meta"):
    clip_l = ViT(img_size=336, patch_size=14, embed_dim=1024, depth=24, num_heads=16, num_classes=0,
                 pre_norm=True, norm_eps=1e-5, act_layer="quick_gelu")
    clip_l.blocks, clip_l.norm = clip_l.blocks[:23], nn.Identity()  # LLaVA reads block 23 of 24, before the norm
    pixels = torch.empty(1, 3, 336, 336)
    vit_tokens = clip_l.forward_features(pixels)
print("pixels                 ", tuple(pixels.shape))
print("tokens after block 23  ", tuple(vit_tokens.shape), "  (1 CLS + 24 x 24 patches)")
print("patch tokens           ", tuple(vit_tokens[:, 1:].shape))

# %% [markdown]
# Higher resolutions give many more tokens, and every token costs the language model compute at every
# layer. InternVL therefore merges each 2 × 2 neighbourhood of patch tokens into one token four times
# as wide (a "pixel shuffle" with scale 0.5), before the projector: a 448-pixel tile gives a 32 × 32
# grid, 1024 patch tokens, and the language model sees 256.
#
# ### Exercise 4 — `pixel_shuffle_tokens` (2 points)
#
# Write `pixel_shuffle_tokens(tokens, grid, factor)`: patch tokens `(B, h*w, C)` in row-major order on
# an `h × w` grid become `(B, (h/f)*(w/f), f*f*C)`. `grid` is an int for a square grid or a pair
# `(h, w)` for any other, and `h` and `w` may differ (a tile of a wide image, or Qwen2-VL's grids).
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


# %% nbgrader={"grade": true, "grade_id": "test_pixel_shuffle", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_pixel_shuffle():
    tokens = torch.arange(16.0).reshape(1, 16, 1)  # a 4 x 4 grid of one-number tokens: token k holds k
    merged = pixel_shuffle_tokens(tokens, 4, 2)
    checks.check_shape(merged, (1, 4, 4), name="pixel_shuffle_tokens on a 4x4 grid, factor 2",
                       hint="(B, h*w, C) -> (B, (h/f)*(w/f), f*f*C)")
    checks.check_close(merged, ref.pixel_shuffle_tokens(tokens, 4, 2), name="the 4 merged tokens of a 4x4 grid "
                       "(row k holds the numbers of the tokens merged into token k)",
                       mistakes={"merging 4 consecutive tokens of the sequence": tokens.reshape(1, 4, 4),
                                 "ordering each neighbourhood column by column (dx before dy)":
                                 torch.tensor([[[0.0, 4, 1, 5], [2, 6, 3, 7], [8, 12, 9, 13], [10, 14, 11, 15]]])},
                       hint="token 0 merges tokens 0, 1 (top row) and 4, 5 (the row below): reshape to "
                            "(B, h/f, f, w/f, f, C), permute to (B, h/f, w/f, f, f, C)")
    wide = torch.arange(8.0).reshape(1, 8, 1)  # a 2 x 4 grid: 2 rows of 4 tokens
    checks.check_close(pixel_shuffle_tokens(wide, (2, 4), 2), torch.tensor([[[0.0, 1, 4, 5], [2, 3, 6, 7]]]),
                       name="pixel_shuffle_tokens on a 2x4 grid (2 rows, 4 columns), factor 2",
                       hint="grid is (h, w) with h rows and w columns, h != w allowed: "
                            "h, w = (grid, grid) if isinstance(grid, int) else grid")
    checks.check_close(pixel_shuffle_tokens(torch.arange(12.0).reshape(1, 12, 1), (6, 2), 2),
                       torch.tensor([[[0.0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]]),
                       name="pixel_shuffle_tokens on a 6x2 grid (6 rows, 2 columns), factor 2",
                       hint="the rows come first: h = grid[0], w = grid[1]")
    checks.check_raises(lambda: pixel_shuffle_tokens(torch.zeros(1, 17, 8), 4, 2), ValueError,
                        name="pixel_shuffle_tokens of 17 tokens (the class token left in) on a 4x4 grid",
                        hint="raise ValueError when N != h * w")
    checks.check_raises(lambda: pixel_shuffle_tokens(torch.zeros(1, 12, 2), (3, 4), 2), ValueError,
                        name="pixel_shuffle_tokens on a 3x4 grid with factor 2",
                        hint="raise ValueError when h or w is not a multiple of factor")
    checks.check_on_meta(lambda: pixel_shuffle_tokens(torch.empty(2, 24, 3, device="meta"), (4, 6), 2),
                         name="pixel_shuffle_tokens", shape=(2, 6, 12), hint="reshape and permute the input itself")


checks.run(check_pixel_shuffle, "Exercise 4 (pixel_shuffle_tokens)",
           hint="grid is an int or a pair (h, w) with h != w allowed; compute every size from h, w and the input's shape")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 3)
for _ in range(5):
    f = int(torch.randint(1, 4, (1,), generator=g))
    hh, ww = (f * int(v) for v in torch.randint(1, 5, (2,), generator=g))
    B, C = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 7, (1,), generator=g))
    x = torch.randn(B, hh * ww, C, generator=g)
    grid = hh if hh == ww and bool(torch.randint(0, 2, (1,), generator=g)) else (hh, ww)
    checks.check_close(pixel_shuffle_tokens(x, grid, f), ref.pixel_shuffle_tokens(x, grid, f),
                       name=f"pixel_shuffle_tokens on a {hh}x{ww} grid, factor {f}, C={C}")
x = torch.randn(2, 6 * 9, 2, generator=g, dtype=torch.float64)
checks.check_close(pixel_shuffle_tokens(x, (6, 9), 3), ref.pixel_shuffle_tokens(x, (6, 9), 3),
                   name="pixel_shuffle_tokens on a 6x9 grid, factor 3, float64")
for n_extra, grid, f in ((4, (4, 4), 2), (0, (3, 5), 3), (1, (2, 2), 2), (0, (6, 4), 4), (0, 6, 3)):
    h, w = (grid, grid) if isinstance(grid, int) else grid
    x = torch.randn(1, h * w + n_extra, 2, generator=g)
    name = f"pixel_shuffle_tokens of {x.shape[1]} tokens on a {grid} grid, factor {f}"
    try:
        want = ref.pixel_shuffle_tokens(x, grid, f)
    except ValueError:
        checks.check_raises(lambda x=x, grid=grid, f=f: pixel_shuffle_tokens(x, grid, f), ValueError, name=name)
    else:
        checks.check_close(pixel_shuffle_tokens(x, grid, f), want, name=name)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5 — `Projector` and `insert_image_tokens` (3 points)
#
# Two pieces join the vision encoder to the language model.
#
# `Projector(in_dim, out_dim)` maps `(B, N, in_dim)` to `(B, N, out_dim)`. LLaVA-1.5's projector (called
# `mlp2x_gelu` in its code) is a two-layer MLP: a Linear to the language model's width, GELU, a Linear
# from that width to itself. Name the layers `linear_1` and `linear_2` (the names Hugging Face uses, so
# that real weights load) and use the exact GELU, `nn.GELU()`: the released weights were trained with it,
# and its tanh approximation gives slightly different numbers.
#
# `insert_image_tokens(text_emb, input_ids, image_tokens, image_token_id)` builds what the language
# model reads. `input_ids` `(B, L)` are the prompts' token ids, each row holding `image_token_id` exactly
# once, at a position of its own (prompts differ); `text_emb` `(B, L, D)` are their embeddings and
# `image_tokens` `(B, N, D)` the projected patch tokens, row $b$ for prompt $b$. Return `(B, L - 1 + N, D)`:
# in each row, the placeholder's embedding is replaced by that row's $N$ image tokens, in their order,
# and the text on either side keeps its order. Raise a `ValueError` if a row holds no placeholder or
# more than one.

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


def insert_image_tokens(text_emb: torch.Tensor, input_ids: torch.Tensor, image_tokens: torch.Tensor,
                        image_token_id: int) -> torch.Tensor:
    """(B, L, D) prompt embeddings -> (B, L - 1 + N, D): each row's placeholder replaced by its N image tokens."""
    ### BEGIN SOLUTION
    is_image = input_ids == image_token_id  # (B, L)
    if (is_image.sum(dim=1) != 1).any():
        raise ValueError(f"every prompt needs exactly one image placeholder (id {image_token_id})")
    rows = []
    for b, p in enumerate(is_image.int().argmax(dim=1).tolist()):  # p: where row b's placeholder is
        rows.append(torch.cat([text_emb[b, :p], image_tokens[b], text_emb[b, p + 1:]]))
    return torch.stack(rows)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_projector", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def check_projector():
    proj = Projector(6, 10)
    checks.check_equal(tuple(proj.linear_1.weight.shape), (10, 6), name="shape of Projector(6, 10).linear_1.weight",
                       hint="linear_1 = nn.Linear(in_dim, out_dim)")
    checks.check_equal(tuple(proj.linear_2.weight.shape), (10, 10), name="shape of Projector(6, 10).linear_2.weight",
                       hint="linear_2 = nn.Linear(out_dim, out_dim): the hidden width is the language model's")
    theirs = ref.Projector(6, 10)
    theirs.load_state_dict(proj.state_dict())
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        hidden = theirs.linear_1(x)
        checks.check_close(proj(x), theirs(x), name="Projector(6, 10) on (2, 5, 6)",
                           mistakes={"the tanh approximation of GELU":
                                     theirs.linear_2(F.gelu(hidden, approximate="tanh")),
                                     "ReLU instead of GELU": theirs.linear_2(F.relu(hidden)),
                                     "leaving out the activation": theirs.linear_2(hidden)},
                           hint="linear_1, then the exact GELU (nn.GELU()), then linear_2")
    D, IMG = 3, 99
    ids = torch.tensor([[5, IMG, 7, 8, 2], [5, 6, 7, IMG, 2]])  # the placeholder at position 1, then 3
    text = torch.arange(2 * 5 * D, dtype=torch.float32).reshape(2, 5, D)
    image = -torch.arange(1, 2 * 4 * D + 1, dtype=torch.float32).reshape(2, 4, D)  # 4 image tokens per row
    got = insert_image_tokens(text, ids, image, IMG)
    checks.check_shape(got, (2, 5 - 1 + 4, D), name="insert_image_tokens of 2 prompts of 5 tokens and 4 image tokens",
                       hint="the placeholder is replaced, not kept: L - 1 + N tokens per row")
    want = ref.insert_image_tokens(text, ids, image, IMG)
    checks.check_close(got, want, name="insert_image_tokens (prompt 0 has its placeholder at position 1, prompt 1 at 3)",
                       mistakes={"the placeholder position of row 0 used for every row":
                                 torch.stack([torch.cat([text[b, :1], image[b], text[b, 2:]]) for b in range(2)]),
                                 "the image tokens of row 0 used for every row":
                                 ref.insert_image_tokens(text, ids, image[:1].expand(2, -1, -1), IMG)},
                       hint="find the placeholder in each row separately (input_ids[b] == image_token_id) and put "
                            "image_tokens[b] there")
    for bad, what in ((torch.tensor([[5, 6, 7, 8, 2], [5, 6, 7, IMG, 2]]), "a prompt without a placeholder"),
                      (torch.tensor([[5, IMG, 7, IMG, 2], [5, 6, 7, IMG, 2]]), "a prompt with two placeholders")):
        checks.check_raises(lambda bad=bad: insert_image_tokens(text, bad, image, IMG), ValueError,
                            name=f"insert_image_tokens of {what}",
                            hint="count the placeholders of every row ((input_ids == image_token_id).sum(dim=1)) "
                                 "and raise ValueError unless each has exactly one")


checks.run(check_projector, "Exercise 5 (Projector and insert_image_tokens)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed() + 4)
for _ in range(3):
    i, o = (int(v) for v in torch.randint(2, 40, (2,), generator=g))
    mine, theirs = Projector(i, o), ref.Projector(i, o)
    theirs.load_state_dict(mine.state_dict())
    x = torch.randn(2, 3, i, generator=g) * 3
    checks.check_close(mine(x), theirs(x), name=f"Projector({i}, {o})", hint="Linear -> exact GELU -> Linear")
for _ in range(4):
    B, L, N, D = (int(torch.randint(1, 7, (1,), generator=g)) for _ in range(4))
    token = 1000 + int(torch.randint(0, 5, (1,), generator=g))
    ids = torch.randint(0, 1000, (B, L), generator=g)
    ids[torch.arange(B), torch.randint(0, L, (B,), generator=g)] = token  # one placeholder per row, anywhere
    dtype = torch.float64 if B % 2 else torch.float32
    text, image = torch.randn(B, L, D, generator=g, dtype=dtype), torch.randn(B, N, D, generator=g, dtype=dtype)
    checks.check_close(insert_image_tokens(text, ids, image, token), ref.insert_image_tokens(text, ids, image, token),
                       name=f"insert_image_tokens, B={B}, L={L}, N={N}, D={D}, {dtype}")
for placeholders in ((1, 1, 0), (2, 1, 1), (1, 1, 1)):  # how many placeholders each of 3 prompts holds
    ids = torch.randint(0, 1000, (3, 6), generator=g)
    for b, count in enumerate(placeholders):
        ids[b, torch.randperm(6, generator=g)[:count]] = 1000
    text, image = torch.randn(3, 6, 2, generator=g), torch.randn(3, 4, 2, generator=g)
    name = f"insert_image_tokens of prompts holding {placeholders} placeholders"
    try:
        want = ref.insert_image_tokens(text, ids, image, 1000)
    except ValueError:
        checks.check_raises(lambda text=text, ids=ids, image=image: insert_image_tokens(text, ids, image, 1000), ValueError,
                            name=name)
    else:
        checks.check_close(insert_image_tokens(text, ids, image, 1000), want, name=name)
### END HIDDEN TESTS

# %% [markdown]
# The whole path from pixels to what the language model reads, for LLaVA-1.5 (no merging) and for an
# InternVL-style tile (2 × 2 merging; InternVL also puts a LayerNorm in front of its MLP), on the `meta`
# device:

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
# Finding the placeholder needs the token ids' values, which the `meta` device does not have, so the last
# step runs on the CPU with stand-ins of the right shapes: a prompt of eight token ids (`USER: <image>
# What is in this picture?`, the placeholder's id 32000), random vectors for their embeddings and for
# the 576 projected patch tokens.

# %%
prompt_ids = torch.tensor([[1, 3148, 1001, 32000, 1724, 338, 297, 29973]])  # (1, 8), one placeholder
sequence = insert_image_tokens(torch.randn(1, 8, 4096), prompt_ids, torch.randn(1, 576, 4096), image_token_id=32000)
print("prompt", tuple(prompt_ids.shape), "+ image tokens (1, 576, 4096) -> the language model reads",
      tuple(sequence.shape))

# %% [markdown]
# ## 4. Token budgets of real models
#
# How many visual tokens a model spends depends on how it treats resolution:
#
# - **LLaVA-1.5** pads every image to a square and resizes it to 336 × 336: always 576 tokens, whatever
#   the original size.
# - **InternVL** (1.5 to 2.5) cuts the image into 448-pixel tiles. It chooses a grid of tiles,
#   `rows × columns`, whose aspect ratio is closest to the image's, among the grids of `min_tiles` to
#   `max_tiles` tiles (1 and 12 by default at inference; InternVL 1.5 allowed up to 40 at test time),
#   resizes the image to that grid and adds a **thumbnail**, the whole image at 448 pixels, whenever
#   there is more than one tile. Each tile or thumbnail gives 256 tokens.
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
# 3. a candidate exactly as close as the best (the same ratio, as 1 × 1, 2 × 2 and 3 × 3 have) replaces
#    it when the image's area is more than half the area its tiles cover at `img_size` pixels each:
#    `height * width > 0.5 * img_size**2 * columns * rows`. A large image thus gets the larger of two
#    equally shaped grids, a small one keeps the smaller.
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
def check_tile_grid():
    checks.check_equal(internvl_tile_grid(448, 448), (1, 1), name="internvl_tile_grid(448, 448)")
    checks.check_equal(internvl_tile_grid(300, 600), (1, 2), name="internvl_tile_grid(300, 600), a wide image",
                       hint="return (rows, columns): one row of two tiles")
    checks.check_equal(internvl_tile_grid(800, 800), (2, 2), name="internvl_tile_grid(800, 800)",
                       hint="1x1, 2x2 and 3x3 are equally close to a square; a later equally close grid replaces the "
                            "best while 800 * 800 > 0.5 * 448**2 * rows * columns: true for 2x2, false for 3x3")
    checks.check_equal(internvl_tile_grid(1080, 1920), (2, 4), name="internvl_tile_grid(1080, 1920)",
                       hint="1 x 2 and 2 x 4 (rows x columns) have the same ratio 2, the closest to 16:9; the larger "
                            "wins the tie because 1080 * 1920 > 0.5 * 448**2 * 8")
    checks.check_equal(internvl_tile_grid(1080, 1920, max_tiles=6), (1, 2),
                       name="internvl_tile_grid(1080, 1920, max_tiles=6)",
                       hint="only grids with min_tiles <= rows * columns <= max_tiles are candidates")
    checks.check_equal(internvl_tile_grid(448, 448, min_tiles=2), (2, 2),
                       name="internvl_tile_grid(448, 448, min_tiles=2)",
                       hint="only grids with min_tiles <= rows * columns <= max_tiles are candidates")
    checks.check_equal(internvl_tile_grid(600, 600, img_size=224), (3, 3),
                       name="internvl_tile_grid(600, 600, img_size=224)",
                       hint="the tie rule uses the img_size given: 600 * 600 > 0.5 * 224**2 * 9")


checks.run(check_tile_grid, "Exercise 6 (internvl_tile_grid)")
### BEGIN HIDDEN TESTS
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
# ### Exercise 7 — `visual_token_count` (2 points)
#
# Write `visual_token_count(height, width, scheme, ...)` for one image:
#
# - `"llava"`: `(img_size // patch_size // merge) ** 2` with `img_size` 336 and `merge` 1 by default;
#   the class token is dropped.
# - `"internvl"`: tiles from your `internvl_tile_grid` (with `img_size` 448 by default), plus one
#   thumbnail if `thumbnail` is true and there is more than one tile; each gives
#   `(img_size // patch_size // merge) ** 2` tokens with `merge` 2 by default.
# - `"qwen2vl"`: resize with factor $f$ = `patch_size * merge` (`merge` 2 by default). First round each
#   side to the nearest multiple of $f$, and to $f$ itself if that gives 0 (Python's `round`). If the
#   area $h' w'$ is then above `max_pixels`, divide both original sides by
#   $\beta = \sqrt{hw / \text{max\_pixels}}$ ($h, w$ the *original* sides) and round each down to a
#   multiple of $f$, again at least $f$; if it is below `min_pixels`, multiply both original sides by
#   $\beta = \sqrt{\text{min\_pixels} / hw}$ and round each up to a multiple of $f$. Tokens:
#   `(h' // patch_size) * (w' // patch_size) // merge**2`.
#
# The defaults `min_pixels = 4·28·28` and `max_pixels = 16384·28·28` are those of Qwen2-VL's released
# preprocessing configuration and of its `qwen-vl-utils` package (Hugging Face's image processor class,
# used without a configuration, caps the area lower, at 1280·28·28). Raise a `ValueError` for another scheme.

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


# %% nbgrader={"grade": true, "grade_id": "test_token_count", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def check_token_count():
    checks.check_equal(visual_token_count(1080, 1920, "llava"), 576, name="LLaVA-1.5, any image",
                       hint="24 x 24 patches; the class token is not passed on")
    checks.check_equal(visual_token_count(448, 448, "internvl"), 256, name="InternVL, one 448-pixel tile",
                       hint="one tile and no thumbnail: (448 // 14 // 2) ** 2")
    checks.check_equal(visual_token_count(1080, 1920, "internvl"), 9 * 256, name="InternVL, 1920x1080",
                       hint="2 x 4 tiles plus the thumbnail, 256 tokens each")
    checks.check_equal(visual_token_count(1080, 1920, "internvl", thumbnail=False), 8 * 256,
                       name="InternVL, 1920x1080, thumbnail=False", hint="the thumbnail only when thumbnail is true")
    checks.check_equal(visual_token_count(1080, 1920, "qwen2vl"), 2691, name="Qwen2-VL, 1920x1080",
                       hint="round each side to the NEAREST multiple of 28: 1080 -> 1092, 1920 -> 1932; then "
                            "78 x 138 patches merged 2 x 2")
    checks.check_equal(visual_token_count(3024, 4032, "qwen2vl", max_pixels=1280 * 28 * 28), 1230,
                       name="Qwen2-VL, 4032x3024 with max_pixels = 1280 * 28 * 28",
                       hint="above max_pixels: divide the original sides by beta = sqrt(h * w / max_pixels) and "
                            "round each DOWN to a multiple of 28 (840 x 1148)")
    checks.check_equal(visual_token_count(50, 300, "qwen2vl", min_pixels=256 * 28 * 28), 280,
                       name="Qwen2-VL, 300x50 with min_pixels = 256 * 28 * 28",
                       hint="below min_pixels: multiply the original sides by beta = sqrt(min_pixels / (h * w)) and "
                            "round each UP to a multiple of 28 (196 x 1120)")
    checks.check_raises(lambda: visual_token_count(10, 10, "blip"), ValueError, name="an unknown scheme",
                        hint="raise ValueError for a scheme other than 'llava', 'internvl' and 'qwen2vl'")


checks.run(check_token_count, "Exercise 7 (visual_token_count)", after=[check_tile_grid])
### BEGIN HIDDEN TESTS
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
for h, w, kw in ((20, 20, {}), (30, 900, {"min_pixels": 512 * 784}), (1000, 12, {}),
                 (15, 14, {"merge": 1, "min_pixels": 4 * 196}), (4000, 30, {"max_pixels": 64 * 784}), (9000, 7000, {})):
    checks.check_equal(visual_token_count(h, w, "qwen2vl", **kw), ref.visual_token_count(h, w, "qwen2vl", **kw),
                       name=f"visual_token_count({h}, {w}, 'qwen2vl', {kw})")
for scheme in ("LLaVA", "qwen2", "llava"):
    try:
        want = ref.visual_token_count(500, 700, scheme)
    except ValueError:
        checks.check_raises(lambda scheme=scheme: visual_token_count(500, 700, scheme), ValueError,
                            name=f"the scheme {scheme!r}")
    else:
        checks.check_equal(visual_token_count(500, 700, scheme), want, name=f"the scheme {scheme!r}")
### END HIDDEN TESTS

# %% [markdown]
# The budgets side by side, for a few common image sizes:

# %% tags=["demo"]
sizes = {"square 448": (448, 448), "phone photo 4032x3024": (3024, 4032), "HD 1920x1080": (1080, 1920),
         "letter page 1700x2200": (2200, 1700), "thumbnail 320x240": (240, 320), "panorama 3840x600": (600, 3840)}
print(f"{'image (width x height)':<24} {'LLaVA-1.5':>9} {'InternVL':>9} {'Qwen2-VL':>9}   InternVL tiles")
for name, (h, w) in sizes.items():
    rows, cols = internvl_tile_grid(h, w)
    print(f"{name:<24} {visual_token_count(h, w, 'llava'):>9} {visual_token_count(h, w, 'internvl'):>9} "
          f"{visual_token_count(h, w, 'qwen2vl'):>9}   {rows} row(s) x {cols} column(s)")

# %% [markdown]
# ### Question 2 — what each model sees of a panorama
#
# *Written answer, 2 points, scored by your instructor.*
#
# LLaVA-1.5 pads the 3840 × 600 panorama of the table to a square before resizing it to 336 × 336.
# How many of its 576 tokens show the panorama rather than padding, and how many pixels tall is a
# line of text that was 20 pixels tall in the original, once resized? Do the same for InternVL (which
# grid, and to what size is the panorama resized?) and Qwen2-VL (to what size?), and say which of
# the three you would use to read a street sign in the panorama, and at what cost in tokens.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_panorama", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# LLaVA-1.5: the padded square is 3840 × 3840, resized by 336/3840 = 0.0875, so the panorama becomes
# 336 × 52.5 pixels: 52.5 / 14 ≈ 3.75 of the 24 patch rows, about 90 of the 576 tokens; the rest show
# padding. A 20-pixel line of text becomes 1.75 pixels tall: unreadable.
#
# InternVL: the ratio 6.4 is closest to 1 row × 6 columns among grids of at most 12 tiles, so the
# panorama is resized to 2688 × 448 (scales 0.70 and 0.75): the text is about 15 pixels tall, 6 tiles
# plus the thumbnail cost 7 × 256 = 1792 tokens (the thumbnail squeezes the whole panorama into one
# 448 square, a global but blurry view).
#
# Qwen2-VL: the sides are rounded to multiples of 28, 3836 × 588, almost the original size: the text
# stays about 20 pixels tall, for 274 × 42 / 4 = 2877 tokens.
#
# For a street sign: Qwen2-VL (or InternVL), at five times LLaVA's token cost; LLaVA-1.5 cannot read it
# at all.
#
# **Rubric** (2 points). 1 point: LLaVA's share of content tokens (any value from about 84 to 96, with
# the scale 336/3840) and a text height under 2 pixels. 1 point: InternVL's 1 × 6 grid (with the
# thumbnail, 1792 tokens) and Qwen2-VL's near-native size with its token count from the table, and a
# choice justified by the text height against the token cost.
# ### END SOLUTION

# %% [markdown]
# ## Go further: prompt ensembling
#
# CLIP does not classify with one caption per class: it embeds several phrasings of each class ("a photo
# of the digit 7", "the handwritten number seven", ...), averages their normalised embeddings and
# normalises the mean. The chapter's evaluation does the same with the three held-out templates.
#
# **What to try.** Train a model as in section 2, then compute the zero-shot accuracy on `test_x` once
# per held-out template alone (`vlm_train.class_prompts((template,))` gives the ten captions of one
# template and their labels; embed them with `model.encode_text`) and once with the average of the
# three templates' embeddings per class. Then add a training template to the ensemble, and a template
# the model has never read in any form ("{num}" alone).
#
# **What to look for.** Single templates can differ by several points of accuracy; the ensemble should
# match or beat the best single one, because averaging removes what each phrasing adds of its own and
# keeps what they share, the digit. **How to tell it worked:** repeat with two or three training seeds;
# an effect smaller than the spread between seeds is not one.

# %% [markdown]
# ## Takeaways
#
# - A contrastive model aligns two towers in one space. CLIP's loss is a softmax over the batch in both
#   directions; SigLIP's treats every image-caption pair as its own binary decision, with a learned
#   bias. Both compare unit vectors scaled by a learned temperature.
# - Zero-shot classification is retrieval among captions: embed one caption per class and pick the
#   closest. Our digit model reads phrasings it never saw in training.
# - A generative VLM keeps the patch tokens. Merging 2 × 2 neighbourhoods into wider tokens, a small
#   MLP to the language model's width and a splice into the prompt are all that sits between the ViT and
#   the language model.
# - Token budgets follow from how resolution is handled: a fixed square (LLaVA-1.5), tiles plus a
#   thumbnail (InternVL) or the native size rounded to the merge grid (Qwen2-VL).
