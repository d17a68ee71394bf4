# %% [markdown]
# # Chapter 5 — DINO: self-distillation with no labels
#
# DINO trains a network without a single label. A **student** sees many views of an image, large and
# small; a **teacher**, an exponential moving average (EMA) of the student, sees only the two large views.
# The student learns to give, on every view, the probability distribution over $K$ "prototypes" that the
# teacher gives on a *different* view of the same image. Nothing in that objective stops both networks
# from answering the same thing for every image — a **collapse** — and most of this chapter is about the
# two ways it collapses and the two small operations, **centering** and **sharpening**, that prevent it.
#
# **You will**
#
# 1. cut an image into 2 global and several local crops (`MultiCrop`);
# 2. build the DINO projection head with its L2-normalised bottleneck and weight-normalised prototypes
#    (`DINOHead`);
# 3. write the DINO loss over every teacher-student pair of different views, with a centered, sharpened
#    teacher (`DINOLoss`);
# 4. update the teacher as an EMA of the student with a cosine momentum schedule (`ema_update`,
#    `cosine_momentum`);
# 5. make DINO collapse on purpose, both ways, and detect it from the teacher's entropy;
# 6. pretrain a small network on handwritten digits without labels and check, with a nearest-neighbour
#    classifier, that its features beat the same network at random initialisation.

# %% [markdown]
# This notebook is the exercise of [Chapter 5 — DINO: self-distillation with no labels](https://vit-from-scratch.github.io/vit-course/book/05-dino.html)
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
# **Time and points.** Top to bottom, the notebook runs in about 50 seconds on a two-core CPU
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

import copy
import math
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2
from vitcourse import analysis, checks, data, env, viz

DEVICE, BUDGET = env.device(), env.budget()
print(env.describe())

# The data of this chapter: scikit-learn's 1,797 handwritten digits (8 x 8), upsampled to 16 x 16.
images = data.digits(16, "all").tensors[0]   # (1797, 1, 16, 16), in [0, 1]


# %% [markdown]
# ## 1. Multi-crop: many views of one image
#
# DINO's augmentation cuts each image into
#
# - **2 global crops**, each covering 40–100 % of the image area, resized to 224 px, and
# - **several local crops**, each covering 5–40 %, resized to 96 px. The official code uses **8** of them
#   (some write-ups say six; the code's default is 8).
#
# The teacher sees only the global crops, the student sees all of them, so the student must predict from
# a small part what the teacher says about the whole: "local-to-global" correspondence. Each crop is also
# flipped at random and, in the official recipe, colour-jittered, blurred and (one global view) solarised.
#
# The crop itself is torchvision's `RandomResizedCrop(size, scale=(lo, hi))`: it picks a rectangle
# covering a random fraction of the area in `scale` (and an aspect ratio near 1), then resizes it to
# `size` × `size`.
#
# ### Exercise 1 — `MultiCrop` (3 points)
#
# Write a class `MultiCrop(global_size=224, local_size=96, num_local=8, global_scale=(0.4, 1.0),
# local_scale=(0.05, 0.4))` whose call `MultiCrop(...)(image)` takes one image (a `(C, H, W)` tensor in
# [0, 1]) and returns a **list** of `2 + num_local` tensors: the two global crops first, of shape
# `(C, global_size, global_size)`, then the local crops `(C, local_size, local_size)`.
# Use `torchvision.transforms.v2`: a `RandomResizedCrop` (pass `antialias=True`) followed by a
# `RandomHorizontalFlip()`; one pipeline for global crops, one for local crops. Every view is a new random
# draw, its crop and its flip. Keep the five arguments as attributes of the same names (the checks read them). The hidden checks
# use other sizes, counts and scales, and look at many calls: how much of the image each crop covers,
# how often views are flipped (about half the time), and that the views of one call differ.

# %% nbgrader={"grade": false, "grade_id": "multicrop", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MultiCrop:
    """image (C, H, W) -> [global_1, global_2, local_1, ..., local_num_local]."""

    def __init__(self, global_size=224, local_size=96, num_local=8,
                 global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)):
        ### BEGIN SOLUTION
        self.global_size, self.local_size, self.num_local = global_size, local_size, num_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.global_crop = v2.Compose([
            v2.RandomResizedCrop(global_size, scale=global_scale, antialias=True),
            v2.RandomHorizontalFlip(),
        ])
        self.local_crop = v2.Compose([
            v2.RandomResizedCrop(local_size, scale=local_scale, antialias=True),
            v2.RandomHorizontalFlip(),
        ])
        ### END SOLUTION

    def __call__(self, image):
        ### BEGIN SOLUTION
        return [self.global_crop(image), self.global_crop(image)] + [
            self.local_crop(image) for _ in range(self.num_local)
        ]
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_multicrop", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Visible checks: the official defaults give 2 + 8 views of the right sizes.
torch.manual_seed(0)
views = MultiCrop()(torch.rand(3, 256, 256))
checks.check_equal(len(views), 10, name="number of views with the official defaults (2 global + 8 local)")
checks.check_equal([tuple(v.shape) for v in views], [(3, 224, 224)] * 2 + [(3, 96, 96)] * 8,
                   name="view shapes (global views first)")
tiny = MultiCrop(16, 8, 4, (0.4, 1.0), (0.1, 0.4))
checks.check_equal([tuple(v.shape) for v in tiny(torch.rand(1, 16, 16))], [(1, 16, 16)] * 2 + [(1, 8, 8)] * 4,
                   name="the tiny setting for 16 px digits")
print("MultiCrop: visible checks passed")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(env.grading_seed())
torch.manual_seed(env.grading_seed())
for _ in range(3):
    gs, ls, nl = int(torch.randint(24, 48, (1,), generator=g)), int(torch.randint(8, 20, (1,), generator=g)), int(torch.randint(1, 7, (1,), generator=g))
    C = int(torch.randint(1, 4, (1,), generator=g))
    out = MultiCrop(gs, ls, nl)(torch.rand(C, 64, 80))
    checks.check_equal([tuple(v.shape) for v in out], [(C, gs, gs)] * 2 + [(C, ls, ls)] * nl,
                       name=f"MultiCrop({gs}, {ls}, {nl}) view shapes")
checks.check_true(isinstance(out, (list, tuple)), "MultiCrop(...)(image) returns a list of views")
mc = MultiCrop(40, 20, 3, (0.3, 0.9), (0.02, 0.2))
checks.check_equal((mc.global_size, mc.local_size, mc.num_local, tuple(mc.global_scale), tuple(mc.local_scale)),
                   (40, 20, 3, (0.3, 0.9), (0.02, 0.2)), name="the five attributes of MultiCrop(40, 20, 3, (0.3, 0.9), (0.02, 0.2))")
# A horizontal ramp image: the range of values in a crop is the fraction of the width it covers, and the
# sign of its slope says whether it was flipped.
ramp = torch.linspace(0, 1, 200).expand(1, 200, 200).contiguous()

def spans_and_flips(mc, draws=40):
    spans, flips, same_globals, same_locals, one_flip = {"g": [], "l": []}, {"g": [], "l": []}, 0, 0, 0
    for _ in range(draws):
        out = mc(ramp)
        call_flips = set()
        for key, views in (("g", out[:2]), ("l", out[2:])):
            for v in views:
                spans[key].append(float(v.max() - v.min()))
                flips[key].append(float(v[0, :, 0].mean()) > float(v[0, :, -1].mean()))
                call_flips.add(flips[key][-1])
        same_globals += torch.equal(out[0], out[1])
        same_locals += torch.equal(out[2], out[3]) if len(out) > 3 else 0
        one_flip += len(call_flips) == 1
    return spans, {k: sum(f) / len(f) for k, f in flips.items()}, same_globals, same_locals, one_flip

spans, flipped, same_globals, same_locals, one_flip = spans_and_flips(MultiCrop(64, 32, 6))
checks.check_true(min(spans["g"]) > 0.5, "global crops must cover 40-100 % of the area (scale=global_scale)")
checks.check_true(max(spans["l"]) < 0.8, "local crops must cover 5-40 % of the area (scale=local_scale)")
checks.check_true(max(spans["g"]) > 0.9 and min(spans["l"]) < 0.35,
                  "crops should be random: global ones sometimes cover the whole width, local ones much less")
for key, name in (("g", "global"), ("l", "local")):
    checks.check_true(0.25 < flipped[key] < 0.75, f"{name} views were flipped in {flipped[key]:.0%} of the draws",
                      hint="every view gets a RandomHorizontalFlip() (probability 0.5) after its crop")
checks.check_true(same_globals <= 2 and same_locals <= 2,
                  "the views of one call repeat each other: draw a new random crop for every view")
# 8 views flipped independently all agree in 1 call out of 128; one flip of the image per call, always
checks.check_true(one_flip <= 10, f"in {one_flip} of 40 calls all 8 views were flipped the same way",
                  hint="flip each view on its own (a RandomHorizontalFlip after each crop), not the image once")
# the scales are arguments: other ranges must give other crops
spans, _, _, _, _ = spans_and_flips(MultiCrop(64, 32, 4, global_scale=(0.9, 1.0), local_scale=(0.02, 0.05)), draws=20)
checks.check_true(min(spans["g"]) > 0.75, "with global_scale=(0.9, 1.0) every global crop covers most of the width",
                  hint="pass global_scale and local_scale on to RandomResizedCrop(scale=...)")
_ = checks.check_true(max(spans["l"]) < 0.35, "with local_scale=(0.02, 0.05) every local crop is a small part of the image",
                      hint="pass global_scale and local_scale on to RandomResizedCrop(scale=...)")
### END HIDDEN TESTS

# %% [markdown]
# Here are the crops of a photograph with the official sizes, and of a handwritten digit with the tiny
# setting we train with below: 16 px global views and 8 px local views.

# %% tags=["demo"]
def show_views(views, title):
    viz.show_images(views, titles=["global"] * 2 + ["local"] * (len(views) - 2), ncols=len(views), size=1.3, title=title)
    plt.show()

photo = data.photo("chelsea", (300, 448))
torch.manual_seed(0)
show_views(MultiCrop()(photo), "official setting: 2 x 224 px + 8 x 96 px (sizes not to scale)")

show_views(MultiCrop(16, 8, 4, (0.4, 1.0), (0.1, 0.4))(images[0]), "tiny setting: 2 x 16 px + 4 x 8 px")


# %% [markdown]
# ## 2. The DINO head
#
# The backbone (a ViT's class token, or here a small network) gives one vector per view. The head turns
# it into $K$ scores, one per **prototype**:
#
# 1. an MLP: `Linear(in_dim, hidden_dim)`, GELU, [`Linear(hidden_dim, hidden_dim)`, GELU] × (nlayers − 2),
#    `Linear(hidden_dim, bottleneck_dim)` (one `Linear(in_dim, bottleneck_dim)` when `nlayers == 1`);
# 2. **L2-normalise** the bottleneck vector;
# 3. a linear layer without bias to $K$ outputs, **weight-normalised**:
#    $W_k = g_k\, v_k / \lVert v_k \rVert$. With `norm_last_layer=True` the magnitudes $g_k$ are fixed
#    at 1 (not trained), so each score is the cosine between the bottleneck vector and prototype $k$, a
#    number in $[-1, 1]$. This keeps the scale of the logits under control; the temperatures of the loss
#    then decide how peaked the distributions are.
#
# Officially `hidden_dim=2048`, `bottleneck_dim=256`, `nlayers=3` and $K$ = 65,536. One more option,
# `use_bn`, puts a `BatchNorm1d(hidden_dim)` after each hidden `Linear` (before the GELU); the official
# ViT recipe leaves it off, but at our tiny scale it matters (section 5).
#
# ### Exercise 2 — `DINOHead` (3 points)
#
# Write `DINOHead(in_dim, out_dim, hidden_dim=2048, bottleneck_dim=256, nlayers=3,
# norm_last_layer=True, use_bn=False)` with two attributes: `mlp` (an `nn.Sequential`, or one `nn.Linear`
# when `nlayers == 1`) and `last_layer`. Make the last layer with
# `nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))`: its magnitude is
# `last_layer.parametrizations.weight.original0` (shape `(out_dim, 1)`); fill it with 1 and, when
# `norm_last_layer`, stop its gradient (`requires_grad_(False)`). Initialise the MLP's `Linear` weights as the official code does, with
# `nn.init.trunc_normal_(weight, std=0.02)` and zero biases. The hidden checks compare the layers, the
# trainable parameters and the output with the reference for 1 to 4 layers, with and without BatchNorm,
# and check that initialisation.

# %% nbgrader={"grade": false, "grade_id": "dino_head", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DINOHead(nn.Module):
    """(B, in_dim) -> (B, out_dim) cosine scores against out_dim prototypes."""

    def __init__(self, in_dim, out_dim, hidden_dim=2048, bottleneck_dim=256, nlayers=3,
                 norm_last_layer=True, use_bn=False):
        super().__init__()
        ### BEGIN SOLUTION
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers = [nn.Linear(in_dim, hidden_dim)]
            layers += [nn.BatchNorm1d(hidden_dim)] if use_bn else []
            layers += [nn.GELU()]
            for _ in range(nlayers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim)]
                layers += [nn.BatchNorm1d(hidden_dim)] if use_bn else []
                layers += [nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False))
        g = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            g.fill_(1.0)
        g.requires_grad_(not norm_last_layer)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        x = F.normalize(self.mlp(x), dim=-1)
        return self.last_layer(x)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_dino_head", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Visible checks: shapes, unit-norm prototypes, cosine scores, frozen magnitudes.
torch.manual_seed(0)
head = DINOHead(32, 100, hidden_dim=64, bottleneck_dim=16)
out = head(torch.randn(5, 32))
checks.check_shape(out, (5, 100), name="DINOHead(32, 100, 64, 16) on (5, 32)")
checks.check_close(head.last_layer.weight.detach().norm(dim=1), torch.ones(100), name="row norms of the last layer",
                   hint="fill the weight-norm magnitude (original0) with 1")
checks.check_true(float(out.detach().abs().max()) <= 1 + 1e-5, "with unit-norm prototypes and an L2-normalised "
                  "bottleneck every score is a cosine in [-1, 1]: did you normalise the bottleneck?")
trainable = {n for n, p in head.named_parameters() if p.requires_grad}
checks.check_true("last_layer.parametrizations.weight.original0" not in trainable,
                  "with norm_last_layer=True the magnitude g must not be trained")
print("DINOHead: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import dino as ref
g = torch.Generator().manual_seed(env.grading_seed())
for nlayers in (1, 2, 3, 4):
    for norm_last, bn in ((True, False), (False, True)):
        dims = [int(v) for v in torch.randint(4, 40, (4,), generator=g)]
        mine, theirs = DINOHead(*dims, nlayers=nlayers, norm_last_layer=norm_last, use_bn=bn), \
            ref.DINOHead(*dims, nlayers=nlayers, norm_last_layer=norm_last, use_bn=bn)
        arch = lambda m: [(type(layer).__name__, getattr(layer, "in_features", getattr(layer, "num_features", None)),
                           getattr(layer, "out_features", None))
                          for layer in (m.mlp if isinstance(m.mlp, nn.Sequential) else [m.mlp])]
        checks.check_equal(arch(mine), arch(theirs), name=f"layers of the MLP (nlayers={nlayers}, use_bn={bn})")
        n_train = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)
        checks.check_equal(n_train(mine), n_train(theirs),
                           name=f"trainable parameters (norm_last_layer={norm_last}, use_bn={bn})")
        mine.eval()
        x = torch.randn(6, dims[0], generator=g)
        with torch.no_grad():
            expected = F.normalize(mine.mlp(x), dim=-1) @ mine.last_layer.weight.T
            actual = mine(x)
        checks.check_close(actual, expected, atol=1e-5, name="head output = normalised bottleneck @ last-layer weight")
        checks.check_close(mine.last_layer.weight.detach().norm(dim=1), torch.ones(dims[1]), atol=1e-5,
                           name="row norms of the last layer at initialisation")
        checks.check_equal(actual.dtype, torch.float32, name="dtype of the head's output")
# the MLP's initialisation: truncated normal weights (std 0.02) and zero biases, as the official code
torch.manual_seed(env.grading_seed())
head = DINOHead(64, 32, hidden_dim=128, bottleneck_dim=48, nlayers=3)
linears = [m for m in head.mlp.modules() if isinstance(m, nn.Linear)]
checks.check_equal(len(linears), 3, name="Linear layers in the MLP of a 3-layer head")
for i, lin in enumerate(linears):
    std = float(lin.weight.detach().std())
    checks.check_true(0.015 < std < 0.025, f"Linear {i} of the MLP has weights with std {std:.4f}, expected 0.02",
                      hint="nn.init.trunc_normal_(weight, std=0.02) on every Linear of the MLP")
    checks.check_true(lin.bias is not None and float(lin.bias.detach().abs().max()) == 0.0,
                      f"Linear {i} of the MLP must start with zero biases (nn.init.zeros_)")
# device: the head on the meta device (shapes only)
_ = checks.check_on_meta(lambda: DINOHead(16, 24, 32, 8, use_bn=True).to("meta")(torch.empty(4, 16, device="meta")),
                         name="DINOHead",
                         hint="create tensors on the input's device")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The loss: centering and sharpening
#
# Stack the head's outputs view by view: the student gives `student_output` of shape $(V B, K)$ for
# $V = 2 + $ `num_local` views of $B$ images (the 2 global views first), the teacher gives
# `teacher_output` of shape $(2B, K)$ for the global views only. Then
#
# $$
# q_i = \mathrm{softmax}\!\left(\frac{t_i - c}{\tau_t}\right), \qquad
# \log p_v = \mathrm{log\,softmax}\!\left(\frac{s_v}{\tau_s}\right), \qquad
# \mathcal{L} = \frac{1}{2V-2} \sum_{i \in \{1,2\}} \sum_{\substack{v=1 \\ v \neq i}}^{V}
# \frac{1}{B}\sum_{b=1}^{B} \Big( -\sum_{k=1}^{K} q_{i,b,k} \log p_{v,b,k} \Big).
# $$
#
# - The student never predicts the teacher on **the same view** ($v \neq i$): 2 teacher views times $V-1$
#   student views each, $2V - 2$ pairs (18 with the official 10 views).
# - **Sharpening**: the teacher temperature $\tau_t$ = 0.04 is lower than the student's $\tau_s$ = 0.1, so
#   the targets are more peaked than the predictions. Without it, nothing pushes a distribution away
#   from uniform.
# - **Centering**: $c$ is a running mean of the teacher's logits, subtracted before the softmax. A
#   prototype that wins for every image gets its score lowered, so no single prototype can take over.
#   After computing the loss, with no gradient:
#   $c \leftarrow m\,c + (1 - m)\,\frac{1}{2B}\sum_{b} t_b$ with $m$ = 0.9 (`center_momentum`).
# - The teacher's probabilities are targets: **no gradient** flows through them (`.detach()`).
#
# Centering alone pushes towards uniform; sharpening alone towards one prototype; together they balance.
#
# ### Exercise 3 — `DINOLoss` (7 points)
#
# Write `DINOLoss(out_dim, teacher_temp=0.04, student_temp=0.1, center_momentum=0.9, ncrops=10)`, an
# `nn.Module` that registers a buffer `center` of zeros, shape `(1, out_dim)`, and whose
# `forward(student_output, teacher_output)` returns the scalar loss above and then updates the center.
# `torch.chunk(x, n)` splits the stacked outputs into views. With `center_momentum=1` the center stays
# at 0: centering is off. The outputs may live on a GPU: create no new tensor on the CPU in `forward` (a
# sum can start from the Python number 0). The hidden checks vary the number of views, the batch, $K$
# and both temperatures, and run the loss on PyTorch's `meta` device.

# %% nbgrader={"grade": false, "grade_id": "dino_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
class DINOLoss(nn.Module):
    """Cross-entropy between the centered, sharpened teacher and the student over 2V - 2 view pairs."""

    def __init__(self, out_dim, teacher_temp=0.04, student_temp=0.1, center_momentum=0.9, ncrops=10):
        super().__init__()
        self.teacher_temp, self.student_temp = teacher_temp, student_temp
        self.center_momentum, self.ncrops = center_momentum, ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_output, teacher_output):
        ### BEGIN SOLUTION
        student = (student_output / self.student_temp).chunk(self.ncrops)
        teacher = F.softmax((teacher_output - self.center) / self.teacher_temp, dim=-1).detach().chunk(2)
        total, pairs = 0.0, 0
        for i, q in enumerate(teacher):
            for v, s in enumerate(student):
                if v == i:
                    continue
                total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                pairs += 1
        loss = total / pairs
        self.update_center(teacher_output)
        return loss
        ### END SOLUTION

    @torch.no_grad()
    def update_center(self, teacher_output):
        ### BEGIN SOLUTION
        batch_center = teacher_output.mean(dim=0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_dino_loss", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
# Visible checks: a small case computed by hand, pair by pair.
torch.manual_seed(0)
B, K, V = 3, 5, 4
s_out, t_out = torch.randn(V * B, K), torch.randn(2 * B, K)
loss_fn = DINOLoss(K, ncrops=V)
expected, pairs = 0.0, 0
for i in range(2):
    q = F.softmax(t_out[i * B:(i + 1) * B] / 0.04, dim=-1)          # center is 0 at the start
    for v in range(V):
        if v != i:
            logp = F.log_softmax(s_out[v * B:(v + 1) * B] / 0.1, dim=-1)
            expected += float((-q * logp).sum(-1).mean())
            pairs += 1
checks.check_equal(pairs, 2 * V - 2, name="number of teacher-student pairs")
checks.check_close(loss_fn(s_out, t_out), torch.tensor(expected / pairs), atol=1e-5, name="DINO loss (4 views)",
                   hint="skip v == i only; average over the 2V - 2 pairs and over the batch")
t_leaf = t_out.clone().requires_grad_(True)
s_leaf = s_out.clone().requires_grad_(True)
DINOLoss(K, ncrops=V)(s_leaf, t_leaf).backward()
checks.check_true(t_leaf.grad is None or float(t_leaf.grad.abs().max()) == 0,
                  "the teacher's outputs received a gradient: detach the teacher's probabilities")
print("DINOLoss: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import dino as ref
g = torch.Generator().manual_seed(env.grading_seed() + 1)
for _ in range(4):
    V, B, K = int(torch.randint(2, 11, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(3, 40, (1,), generator=g))
    tt, st = float(torch.empty(1).uniform_(0.02, 0.08, generator=g)), float(torch.empty(1).uniform_(0.08, 0.3, generator=g))
    mine, theirs = DINOLoss(K, tt, st, 0.9, ncrops=V), ref.DINOLoss(K, tt, st, 0.9, ncrops=V)
    c0 = torch.randn(1, K, generator=g)
    mine.center.copy_(c0); theirs.center.copy_(c0)
    for step in range(2):
        s_out, t_out = torch.randn(V * B, K, generator=g), torch.randn(2 * B, K, generator=g) * 0.5
        got = mine(s_out, t_out)
        checks.check_close(got, theirs(s_out, t_out), atol=1e-4,
                           name=f"DINO loss, {V} views, batch {B}, K={K}, teacher_temp {tt:.3f}, student_temp {st:.3f}, step {step}")
        checks.check_shape(got, (), name="the loss (a scalar)")
        checks.check_equal(got.dtype, torch.float32, name="dtype of the loss")
# device: the loss on the meta device (shapes only): a tensor created on the CPU raises
_ = checks.check_on_meta(lambda: DINOLoss(8, ncrops=4).to("meta")(torch.empty(12, 8, device="meta"),
                                                                   torch.empty(6, 8, device="meta")),
                         name="DINOLoss",
                         hint="create tensors on the inputs' device, or start a sum from the Python number 0")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_center", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Visible checks: the center moves by EMA of the teacher's batch mean, after the loss.
torch.manual_seed(1)
loss_fn = DINOLoss(6, center_momentum=0.9, ncrops=2)
t1, t2 = torch.randn(4, 6), torch.randn(4, 6)
loss_fn(torch.randn(4, 6), t1)
checks.check_close(loss_fn.center, 0.1 * t1.mean(0, keepdim=True), name="center after one step",
                   hint="c <- m c + (1 - m) * mean of the teacher outputs over the batch (both global views)")
loss_fn(torch.randn(4, 6), t2)
checks.check_close(loss_fn.center, 0.09 * t1.mean(0, keepdim=True) + 0.1 * t2.mean(0, keepdim=True),
                   name="center after two steps")
print("center: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import dino as ref
g = torch.Generator().manual_seed(env.grading_seed() + 2)
K, B, V = int(torch.randint(3, 30, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g)), 4
m = float(torch.empty(1).uniform_(0.5, 0.99, generator=g))
mine, theirs = DINOLoss(K, center_momentum=m, ncrops=V), ref.DINOLoss(K, center_momentum=m, ncrops=V)
for step in range(3):
    s_out, t_out = torch.randn(V * B, K, generator=g), torch.randn(2 * B, K, generator=g) + 2
    checks.check_close(mine(s_out, t_out), theirs(s_out, t_out), atol=1e-4,
                       name=f"loss at step {step}: the loss must use the center from BEFORE this batch")
    checks.check_close(mine.center, theirs.center, atol=1e-6, name=f"center after step {step} (momentum {m:.3f})")
off = DINOLoss(K, center_momentum=1.0, ncrops=V)
off(torch.randn(V * B, K, generator=g), torch.randn(2 * B, K, generator=g))
_ = checks.check_close(off.center, torch.zeros(1, K), name="center with center_momentum=1 (centering off)")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The teacher: an exponential moving average of the student
#
# The teacher has the student's architecture and is never trained by gradient descent. After each
# optimiser step of the student,
#
# $$\theta_t \leftarrow m\,\theta_t + (1 - m)\,\theta_s,$$
#
# with the momentum $m$ following a half cosine from 0.996 to 1 over training:
# $m(t) = 1 - (1 - 0.996)\,\frac{1 + \cos(\pi t / T)}{2}$. (DINOv2 starts at 0.992 and also ends at 1.)
# The teacher is thus an ensemble of recent students, slower and more stable; in the DINO paper it is
# also the better network throughout training. After $k$ steps with a constant $m$, every teacher
# parameter is $m^k \theta_t^{(0)} + (1 - m^k)\,\theta_s$ when the student does not move.
#
# ### Exercise 4 — `ema_update` and `cosine_momentum` (3 points)
#
# Write `ema_update(student, teacher, momentum)`, which updates the teacher's parameters in place under
# `torch.no_grad()`, and `cosine_momentum(step, total_steps, base=0.996, final=1.0)`, which gives
# `base` at step 0 and `final` at `step == total_steps` (the hidden checks use other values of both).

# %% nbgrader={"grade": false, "grade_id": "ema", "locked": false, "schema_version": 3, "solution": true, "task": false}
@torch.no_grad()
def ema_update(student, teacher, momentum):
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter."""
    ### BEGIN SOLUTION
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)
    ### END SOLUTION


def cosine_momentum(step, total_steps, base=0.996, final=1.0):
    """base at step 0, final at total_steps, on a half cosine."""
    ### BEGIN SOLUTION
    return final - (final - base) * (1 + math.cos(math.pi * step / total_steps)) / 2
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ema", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Visible checks: the closed form after k steps, and the schedule's end points.
torch.manual_seed(2)
student, teacher = nn.Linear(3, 2), nn.Linear(3, 2)
teacher.requires_grad_(False)
w0, ws = teacher.weight.clone(), student.weight.detach().clone()
for _ in range(5):
    ema_update(student, teacher, 0.9)
checks.check_close(teacher.weight, 0.9**5 * w0 + (1 - 0.9**5) * ws, name="teacher weight after 5 EMA steps",
                   hint="teacher = m * teacher + (1 - m) * student; m multiplies the TEACHER")
checks.check_close(torch.tensor(cosine_momentum(0, 100)), torch.tensor(0.996), name="cosine_momentum(0, 100)")
checks.check_close(torch.tensor(cosine_momentum(100, 100)), torch.tensor(1.0), name="cosine_momentum(100, 100)")
checks.check_close(torch.tensor(cosine_momentum(50, 100)), torch.tensor(0.998), name="cosine_momentum(50, 100)")
print("EMA teacher: visible checks passed")
### BEGIN HIDDEN TESTS
from vitcourse.models import dino as ref
g = torch.Generator().manual_seed(env.grading_seed() + 3)
student = nn.Sequential(nn.Linear(4, 5), nn.GELU(), nn.Linear(5, 3))
teacher = copy.deepcopy(student).requires_grad_(False)
with torch.no_grad():
    for p in student.parameters():
        p.add_(torch.randn(p.shape, generator=g))
start = [p.clone() for p in teacher.parameters()]
T = int(torch.randint(5, 30, (1,), generator=g))
base = float(torch.empty(1).uniform_(0.8, 0.999, generator=g))
final = float(torch.empty(1).uniform_(base + 1e-4, 1.0, generator=g))
for i in range(T + 1):
    checks.check_close(torch.tensor(cosine_momentum(i, T, base, final), dtype=torch.float64),
                       torch.tensor(ref.cosine_momentum(i, T, base, final), dtype=torch.float64), atol=1e-9, rtol=0,
                       name=f"cosine_momentum({i}, {T}, base={base:.4f}, final={final:.4f})")
ms = [cosine_momentum(i, T, base, 1.0) for i in range(T)]
for i, m in enumerate(ms):
    checks.check_close(torch.tensor(m, dtype=torch.float64), torch.tensor(ref.cosine_momentum(i, T, base, 1.0), dtype=torch.float64),
                       atol=1e-9, rtol=0, name=f"cosine_momentum({i}, {T}, base={base:.4f})")
    ema_update(student, teacher, m)
keep = math.prod(ms)
for p0, ps, pt in zip(start, student.parameters(), teacher.parameters()):
    checks.check_close(pt, keep * p0 + (1 - keep) * ps.detach(), atol=1e-6, name="teacher after a cosine schedule")
    checks.check_true(not pt.requires_grad and pt.grad_fn is None,
                      "after ema_update a teacher parameter is part of the student's autograd graph",
                      hint="update the teacher under torch.no_grad() (decorate ema_update with @torch.no_grad())")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Collapse, on purpose
#
# Time to train. The backbone is a small MLP on the 16 px digit views (8 px local views are resized to
# 16 px first); the head has $K = 64$ prototypes. For speed, the course library's
# `vitcourse.models.dino.MultiCrop.tiny()` crops a whole batch at once (the same random resized crops and
# flips as your `MultiCrop`, plus a little brightness and contrast jitter, with one `grid_sample` call
# instead of a Python loop over images). The training loop is the library's `train_dino`
# (`vitcourse.experiments.dino`), run with **your** `DINOHead`, `DINOLoss`, `ema_update` and
# `cosine_momentum`: it records the diagnostics below at every step.
#
# We watch two numbers of the teacher's distribution $q$ on each batch:
#
# - the **teacher entropy** $\overline{H(q_b)}$, averaged over images: 0 when each image is sent to one
#   prototype, $\log K$ = 4.16 nats when each image is spread uniformly;
# - the **marginal entropy** $H(\bar q)$ of the distribution averaged over the batch: how many prototypes
#   are in use overall. Healthy training has a low teacher entropy with a high marginal entropy (sharp
#   and diverse); one-hot collapse has both near 0; uniform collapse has both near $\log K$.
#
# The KL divergence between teacher and student, $\mathrm{CE} - H(q)$, goes to 0 in both collapses (there is
# nothing left to learn) and stays positive in healthy training.
#
# One finding of our own at this scale: without the head's BatchNorm (`use_bn=True`) the randomly
# initialised backbone maps all digits to nearly the same direction, the teacher gives every image the
# same distribution, centering removes it, and training drifts to uniform even with centering *and*
# sharpening on. BatchNorm standardises each hidden unit over the batch, which restores the differences
# between images. Large-scale DINO does not need it; tiny DINO does.

# %%
from vitcourse.experiments.dino import PixelMLP, train_dino


def train_with_my_pieces(make_backbone, images, **settings):
    """DINO without labels, with the head, loss, EMA and momentum schedule written above."""
    return train_dino(make_backbone, images, head_cls=DINOHead, loss_cls=DINOLoss, ema=ema_update,
                      momentum_schedule=cosine_momentum, device=DEVICE, **settings)


REGIMES = {  # name: (teacher_temp, center_momentum)
    "no centering": (0.03, 1.0),
    "no sharpening": (0.1, 0.9),
    "centering + sharpening": (0.03, 0.9),
}


def run_regimes(seed=0, steps=100):
    """100 steps of PixelMLP + head (K = 64, batches of 32, teacher momentum 0.97) in each regime."""
    return {name: train_with_my_pieces(PixelMLP, images, steps=steps, K=64, batch=32, teacher_temp=tt,
                                       center_momentum=cm, momentum=0.97, seed=seed).history
            for name, (tt, cm) in REGIMES.items()}


# %% tags=["demo"]
histories = run_regimes(seed=0)
viz.plot_collapse(histories, K=64)
plt.show()
for name, h in histories.items():
    print(f"{name:>24}: teacher entropy {h['teacher_entropy'][-1]:.2f}, marginal {h['marginal_entropy'][-1]:.2f}"
          f" (log K = {math.log(64):.2f})")


# %% [markdown]
# ### Exercise 5 — detect the collapse (4 points)
#
# Write `collapse_state(teacher_entropy, marginal_entropy, K)` that classifies the last values of a run:
# `"one-hot"` when the teacher entropy is below 0.25 log K (the teacher is nearly certain, whatever the
# image), `"uniform"` when it is above 0.95 log K, and `"healthy"` otherwise. The graded check runs the
# three regimes above (with your loss, head and EMA) on a new seed and expects your function to name
# each one correctly. Use the average of the last 10 steps, so that one noisy batch does not decide (of
# all the steps when a run has fewer than 10).

# %% nbgrader={"grade": false, "grade_id": "collapse_state", "locked": false, "schema_version": 3, "solution": true, "task": false}
def collapse_state(teacher_entropy, marginal_entropy, K):
    """'one-hot', 'uniform' or 'healthy' from lists of per-step entropies (nats)."""
    ### BEGIN SOLUTION
    h = sum(teacher_entropy[-10:]) / len(teacher_entropy[-10:])
    if h < 0.25 * math.log(K):
        return "one-hot"
    if h > 0.95 * math.log(K):
        return "uniform"
    return "healthy"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_collapse", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# Visible checks: runs that end one-hot, uniform and healthy (K = 64, log K = 4.16).
expected = {"no centering": "one-hot", "no sharpening": "uniform", "centering + sharpening": "healthy"}
checks.check_equal(collapse_state([0.05] * 20, [0.05] * 20, 64), "one-hot", name="collapse_state of a one-hot run")
checks.check_equal(collapse_state([4.15] * 20, [4.16] * 20, 64), "uniform", name="collapse_state of a uniform run")
checks.check_equal(collapse_state([2.0] * 20, [3.5] * 20, 64), "healthy", name="collapse_state of a healthy run",
                   hint="decide from the teacher entropy per image, against log K")
checks.check_equal(collapse_state([4.1] * 5 + [0.1] * 10, [0.2] * 15, 64), "one-hot",
                   name="collapse_state of a run that ends one-hot")
print("collapse detection: visible checks passed")
### BEGIN HIDDEN TESTS
seed = env.grading_seed() + 100
runs = run_regimes(seed=seed)
for name, h in runs.items():
    checks.check_equal(collapse_state(h["teacher_entropy"], h["marginal_entropy"], 64), expected[name],
                       name=f"collapse_state for '{name}' (seed {seed})")
healthy = runs["centering + sharpening"]
checks.check_true(sum(healthy["marginal_entropy"][-10:]) / 10 > 0.7 * math.log(64),
                  "the healthy run should keep many prototypes in use (marginal entropy)")
for k in (16, 256):
    checks.check_equal(collapse_state([0.3 * math.log(k)] * 10, [math.log(k)] * 10, k), "healthy", name=f"K={k}")
    checks.check_equal(collapse_state([0.97 * math.log(k)] * 10, [math.log(k)] * 10, k), "uniform", name=f"K={k}")
    checks.check_equal(collapse_state([0.2 * math.log(k)] * 10, [math.log(k)] * 10, k), "one-hot", name=f"K={k}")
log64 = math.log(64)
checks.check_equal(collapse_state([2.0] * 9 + [0.05], [3.0] * 10, 64), "healthy",
                   name="collapse_state when only the very last step is low", hint="average the last 10 steps")
checks.check_equal(collapse_state([0.1] * 30 + [4.1] * 3 + [2.0] * 7, [3.0] * 40, 64), "healthy",
                   name="collapse_state of the last 10 steps (4.1 x 3, 2.0 x 7)")
_ = checks.check_equal(collapse_state([0.99 * log64] * 5, [log64] * 5, 64), "uniform",
                       name="collapse_state of a run with only 5 steps", hint="average the steps there are when fewer than 10")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Do the features mean anything?
#
# Now a real, if short, pretraining of the course's ViT (chapter 3): embedding width 64, 4 blocks, patch
# size 4, so a 16 px global view is 16 tokens and an 8 px local view 4 tokens; the position embeddings are
# interpolated to the smaller grid, as in chapter 2. The backbone's output is the class token. We use
# $K = 256$ prototypes and a sharper teacher ($\tau_t$ = 0.02), and train on the 1,437 training digits without
# their labels. Then we throw the head away and use the backbone's features for a **nearest-neighbour**
# classifier with only 1, 5 or 20 labelled images per class, on the 360 test digits, and compare with the
# same ViT at its random initialisation. (In the tiny budget this takes about half a minute on one CPU
# core; the full budget trains ten times longer.)

# %% tags=["demo"]
from vitcourse.analysis import features, few_shot_accuracy
from vitcourse.models.vit import digits_vit


def vit_backbone():
    """The course's digits ViT without a head, with MLP ratio 2: its output is the class token, (B, 64)."""
    return digits_vit(num_classes=0, mlp_ratio=2.0)


train_x, train_y = data.digits(16, "train").tensors   # 1,437 digits: pretraining (labels unused)
test_x, test_y = data.digits(16, "test").tensors      # 360 digits: the nearest-neighbour test
steps = 300 if BUDGET == "tiny" else 3000
run = train_with_my_pieces(vit_backbone, train_x, steps=steps, K=256, batch=64, teacher_temp=0.02, momentum=0.99)
h = run.history
print(f"teacher entropy {h['teacher_entropy'][-1]:.2f}, marginal {h['marginal_entropy'][-1]:.2f}"
      f" (log K = {math.log(256):.2f})")
print(f"{'features':<22}" + "".join(f"{n:>3}-shot" for n in (1, 5, 20)))
for name, net in (("random init", run.initial), ("DINO teacher", run.teacher.backbone)):
    ftr, fte = features(net, train_x), features(net, test_x)
    accs = [few_shot_accuracy(ftr, train_y, fte, test_y, n) for n in (1, 5, 20)]
    print(f"{name:<22}" + "".join(f"{a:>8.3f}" for a in accs))

# %% [markdown]
# Self-supervised pretraining gives this ViT a clear gain over its random initialisation with the
# same number of labels (we measured 0.20 -> 0.31 with one label per class, 0.37 -> 0.54 with twenty).
# Be honest about the scale, too: on these tiny, clean digits, nearest neighbours on **raw pixels** are
# still better (about 0.65 / 0.85 / 0.94 for 1 / 5 / 20 shots), and a random MLP on pixels is nearly as
# good as pixels. DINO's features overtake such baselines with real images, large
# ViTs and hundreds of epochs; this notebook shows the mechanism, not the final numbers.

# %% [markdown]
# ## 7. What a large DINO sees
#
# With the full budget (a GPU and a connection, e.g. on Colab) the next cell downloads the official DINO
# ViT-S/16 through timm, reads its weights into the course's `ViT` (`vitcourse.convert.from_timm`) and
# plots the attention of the class token to the 196 patches in the last block, one panel per head.
# In the DINO paper such maps outline the main object of the image, though no label or mask was ever
# used in training.

# %% tags=["demo"]
# Reading the official DINO ViT-S/16 into the course's ViT: its class token's attention outlines the cat.
if BUDGET == "full" and not env.online():
    print("No connection to huggingface.co: the attention maps of the official DINO ViT-S/16 need internet access.")
elif BUDGET == "full":
    try:
        import timm
        from vitcourse import viz
        from vitcourse.convert import from_timm

        official = timm.create_model("vit_small_patch16_224.dino", pretrained=True)
        dino_vits = from_timm(official).eval().to(DEVICE)
        cat = data.photo("chelsea", 224)
        mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        attn = analysis.cls_attention(dino_vits, ((cat - mean) / std)[None].to(DEVICE))[0].cpu()   # (6 heads, 14, 14), last block
        viz.show_attention(cat, attn)
        plt.show()
    except Exception as exc:  # no network, or no weights: say so in one line
        print(f"The DINO ViT-S/16 weights could not be loaded ({type(exc).__name__}: {exc}); "
              "the attention maps need a connection (e.g. on Colab).")
else:
    print("Attention maps of the official DINO ViT-S/16: run this notebook with the full budget (a GPU, e.g. Colab).")

# %% [markdown]
# ## Takeaways
#
# - DINO is distillation without labels: a student matches, across different views, the output
#   distribution of an EMA teacher that sees only the global crops; $2V-2$ view pairs per image.
# - Two trivial solutions exist. Without centering one prototype wins for every image (entropy → 0);
#   without sharpening every prototype gets the same probability (entropy → $\log K$). Centering (subtract
#   a running mean of the teacher's logits) and sharpening (teacher temperature below the student's)
#   pull in opposite directions and keep training in between.
# - Watch the teacher's entropy, the entropy of its batch average and the teacher–student KL: they tell
#   the two collapses and healthy training apart.
# - The teacher's momentum rises from 0.996 to 1 on a cosine (DINOv2: from 0.992); the teacher never
#   receives gradients.
# - DINOv2 adds a masked-token objective (iBOT), a KoLeo regulariser that spreads features apart, and
#   Sinkhorn–Knopp centering instead of the running mean; the book chapter explains them.
