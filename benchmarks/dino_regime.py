"""Look for a healthy DINO regime at CPU scale on the bundled digits (issue 5).

One run: pretrain a small backbone with DINO on the digits' training split (no labels), log the
teacher diagnostics (per-image entropy, entropy of the batch-mean distribution, KL teacher||student),
then few-shot 1-NN (cosine) on backbone features: pretrained vs the same backbone at random init.

    python benchmarks/dino_regime.py --backbone cnn --K 256 --teacher-temp 0.02 --head-bn  # healthy
    python benchmarks/dino_regime.py --backbone mlp --K 64 --batch 32 --steps 100 --momentum 0.97 \
        --teacher-temp 0.03 --head-bn [--no-centering | --teacher-temp 0.1]    # the three regimes

Single thread (torch.set_num_threads(1)); the machine is shared. Every run below uses the defaults
lr 1e-3 (20 warm-up steps), AdamW weight decay 0.04, gradient clip 3, 4 local crops (8 px, scale
0.1-0.4), global scale 0.4-1, brightness/contrast jitter 0.4, student temperature 0.1, center
momentum 0.9, constant teacher momentum unless --cosine; pretraining on the 1,297-image training split,
kNN on 500 held-out digits. H = teacher entropy per image (last step), Hm = entropy of the batch-mean
teacher distribution, KL = teacher||student, 1/5/20 = few-shot 1-NN accuracy (mean of 20 draws).

Results (Nov 2026, shared and loaded 2-core machine, 1 thread; seconds are wall time of the run):

Three regimes, as in the chapter (MLP backbone, K=64, batch 32, 100 steps, momentum 0.97, --head-bn):
    --teacher-temp 0.03                 1.5 s  H 2.23  Hm 3.42  KL 0.98   healthy   (log K = 4.16)
    --teacher-temp 0.03 --no-centering  1.1 s  H 0.00  Hm 0.00  KL 0.00   one-hot collapse
    --teacher-temp 0.1                  0.9 s  H 4.15  Hm 4.16  KL 0.01   uniform (no sharpening)
    --teacher-temp 0.03 (no --head-bn)  2.2 s  H 1.15  Hm 1.16  KL 0.00   collapsed: every image gets
                                                                          the same distribution
  (same settings in a copy of the loop without lr warm-up and clipping, seeds 0-9: no centering
  H <= 0.19, no sharpening H >= 4.15, both on H 2.33-2.68 with Hm 3.28-3.60.)

The key finding: without BatchNorm in the head (DINOHead(use_bn=True)) every small backbone tried
(MLP, GAP-CNN, at K 64-1024, teacher temp 0.01-0.04, lr 1e-3-5e-3, momentum 0.98-0.996, batch 64-256,
weaker crops, 0-6 local crops, free last layer, one-layer head) collapsed within 100-300 steps: the
random backbone maps all digits to nearly the same direction, so H == Hm from step 0, centering then
removes the common distribution and the run ends uniform (CNN/MLP at teacher temp 0.04, H -> 5.54 =
log 256 in 200 steps) or at a constant non-uniform distribution (KL ~ 0). With --head-bn runs stay
healthy (H < Hm, KL ~ 1). Lower teacher momentum (0.9) or no centering -> one-hot.

Features (GAP-CNN backbone, K=256, teacher temp 0.02, momentum 0.99, batch 64, 300 steps, --head-bn):
    seed 0: 37 s  H 3.15 Hm 4.59 KL 1.31  1/5/20-shot 0.409/0.580/0.690 (all-label k=20: 0.786)
            same CNN at random init          0.256/0.429/0.616 (0.720)
    seed 1: 30 s  teacher 0.369/0.535/0.660 (0.766)  random init 0.249/0.430/0.598 (0.722)
    seed 2: 27 s  teacher 0.390/0.543/0.652 (0.742)  random init 0.235/0.418/0.604 (0.716)
    --steps 800 --K 1024 (seed 0): 73 s  teacher 0.509/0.688/0.768 (0.846)
    without --head-bn (seed 0): H 1.67 = Hm 1.68, KL 0.02 (collapsed)  0.280/0.409/0.511 (0.718)
    course ViT (--backbone vit: dim 64, depth 4, patch 4, 4 heads, mlp_ratio 2, CLS token), same
    settings, seed 0: 37 s  H 3.45 Hm 4.62 KL 1.03  teacher 0.328/0.433/0.536 (0.614)
            same ViT at random init          0.193/0.269/0.339 (0.450)
            without --head-bn: H 2.19 = Hm 2.19, KL 0.00 (collapsed)  0.188/0.269/0.342 (0.474)
    raw pixels: 0.638/0.848/0.939 (0.952); random MLP on pixels 0.606/0.810/0.914 (0.940) - the MLP
    gains nothing over its (pixel-like) random init at this budget; the CNN gains +13-16 points at
    1 shot but stays below raw pixels.
"""


from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from vitcourse.models.dino import (DINOHead, DINOLoss, MultiCropWrapper, cosine_momentum,
                                   ema_update, fast_multicrop, teacher_temp_schedule)


def digits(size: int = 16):
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    test, train = perm[:500], perm[500:]
    return x[train], y[train], x[test], y[test]


class ConvNet(nn.Module):
    """Tiny CNN with global average pooling: reads 16 px and 8 px views alike. (B,1,H,W) -> (B,dim)."""

    def __init__(self, dim: int = 64, width: int = 32, bn: bool = False):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), norm(width), nn.GELU(),
            nn.Conv2d(width, dim, 3, padding=1, stride=2), norm(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1),
        )
        self.dim = dim

    def forward(self, x):
        return self.net(x).mean(dim=(2, 3))


class MLPNet(nn.Module):
    """MLP on pixels resized to 16 px. (B,1,H,W) -> (B,dim)."""

    def __init__(self, dim: int = 64, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(256, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.dim = dim

    def forward(self, x):
        if x.shape[-1] != 16:
            x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
        return self.net(x)


def make_vit(dim: int = 64, depth: int = 4):
    from vitcourse.models.vit import ViT  # written by the vit helper (issue 3)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = ViT(img_size=16, patch_size=4, in_chans=1, num_classes=0, embed_dim=dim,
                           depth=depth, num_heads=4, mlp_ratio=2.0)
            self.dim = dim

        def forward(self, x):
            return self.vit.forward_features(x)[:, 0]

    return Wrap()


def backbone(name: str, dim: int):
    return {"cnn": lambda: ConvNet(dim), "cnnbn": lambda: ConvNet(dim, bn=True), "mlp": lambda: MLPNet(dim), "vit": lambda: make_vit(dim)}[name]()


@torch.no_grad()
def features(net, x):
    net.eval()
    f = torch.cat([net(x[i:i + 500]) for i in range(0, len(x), 500)])
    net.train()
    return F.normalize(f, dim=-1)


def few_shot(ftr, ytr, fte, yte, shots=(1, 5, 20), draws=20):
    """1-NN (cosine) with `shots` labelled images per class, mean accuracy over `draws` draws."""
    out = {}
    for n in shots:
        accs = []
        for d in range(draws):
            g = torch.Generator().manual_seed(1000 + d)
            idx = torch.cat([(ytr == c).nonzero()[torch.randperm(int((ytr == c).sum()), generator=g)[:n], 0]
                             for c in range(10)])
            sim = fte @ ftr[idx].T
            accs.append(float((ytr[idx][sim.argmax(1)] == yte).float().mean()))
        out[n] = round(float(np.mean(accs)), 3)
    # full kNN, k=20, cosine, majority vote
    sim = fte @ ftr.T
    top = sim.topk(20, dim=1).indices
    pred = torch.mode(ytr[top], dim=1).values
    out["all_k20"] = round(float((pred == yte).float().mean()), 3)
    return out


def run(a):
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    xtr, ytr, xte, yte = digits()
    student_bb = backbone(a.backbone, a.dim)
    init_bb = copy.deepcopy(student_bb)
    head = DINOHead(a.dim, a.K, hidden_dim=a.hidden, bottleneck_dim=a.bottleneck, nlayers=a.nlayers,
                    norm_last_layer=not a.free_last_layer, use_bn=a.head_bn)
    student = MultiCropWrapper(student_bb, head)
    teacher = copy.deepcopy(student).requires_grad_(False)
    ncrops = 2 + a.num_local
    loss_fn = DINOLoss(a.K, teacher_temp=a.teacher_temp, student_temp=a.student_temp,
                       center_momentum=a.center_momentum, ncrops=ncrops,
                       use_centering=not a.no_centering)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=a.lr,
                            weight_decay=a.wd)
    log, t0 = [], time.time()
    for step in range(a.steps):
        idx = torch.randint(len(xtr), (a.batch,), generator=g)
        views = fast_multicrop(xtr[idx], num_local=a.num_local, jitter=a.jitter,
                               global_scale=(a.gmin, 1.0), local_scale=(a.lmin, a.lmax), generator=g)
        lr = a.lr * min(1.0, (step + 1) / max(a.warmup, 1))
        for group in opt.param_groups:
            group["lr"] = lr
        tt = teacher_temp_schedule(step, a.tt_warmup, a.teacher_temp_start or a.teacher_temp, a.teacher_temp)
        with torch.no_grad():
            t_out = teacher(views[:2])
        s_out = student(views)
        loss = loss_fn(s_out, t_out, teacher_temp=tt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip:
            nn.utils.clip_grad_norm_(student.parameters(), a.clip)
        opt.step()
        m = cosine_momentum(step, a.steps, a.momentum, 1.0) if a.cosine else a.momentum
        ema_update(student, teacher, m)
        if step % a.log_every == 0 or step == a.steps - 1:
            rec = {"step": step, **{k: round(v, 4) for k, v in loss_fn.last.items()}}
            log.append(rec)
            if a.verbose:
                print(json.dumps(rec), flush=True)
    elapsed = time.time() - t0
    res = {
        "args": vars(a), "seconds": round(elapsed, 1), "logK": round(math.log(a.K), 3),
        "final": log[-1],
        "knn_teacher": few_shot(features(teacher.backbone, xtr), ytr, features(teacher.backbone, xte), yte),
        "knn_student": few_shot(features(student.backbone, xtr), ytr, features(student.backbone, xte), yte),
        "knn_random_init": few_shot(features(init_bb, xtr), ytr, features(init_bb, xte), yte),
        "knn_pixels": few_shot(F.normalize(xtr.flatten(1), dim=-1), ytr, F.normalize(xte.flatten(1), dim=-1), yte),
        "curve": log,
    }
    return res


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="cnn", choices=["cnn", "cnnbn", "mlp", "vit"])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--K", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--bottleneck", type=int, default=64)
    p.add_argument("--nlayers", type=int, default=3)
    p.add_argument("--free-last-layer", action="store_true")
    p.add_argument("--head-bn", action="store_true")
    p.add_argument("--teacher-temp", type=float, default=0.04)
    p.add_argument("--teacher-temp-start", type=float, default=None)
    p.add_argument("--tt-warmup", type=int, default=0)
    p.add_argument("--student-temp", type=float, default=0.1)
    p.add_argument("--center-momentum", type=float, default=0.9)
    p.add_argument("--no-centering", action="store_true")
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--cosine", action="store_true")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--wd", type=float, default=0.04)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--clip", type=float, default=3.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--num-local", type=int, default=4)
    p.add_argument("--jitter", type=float, default=0.4)
    p.add_argument("--gmin", type=float, default=0.4)
    p.add_argument("--lmin", type=float, default=0.1)
    p.add_argument("--lmax", type=float, default=0.4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    return p


if __name__ == "__main__":
    res = run(parser().parse_args())
    if res["args"]["json"]:
        print(json.dumps(res))
    else:
        for rec in res["curve"]:
            print(rec)
        for k in ("seconds", "logK", "knn_teacher", "knn_student", "knn_random_init", "knn_pixels"):
            print(k, res[k])
