"""Chapter 5: DINO at CPU scale on the bundled digits, without labels.

One run: pretrain a small backbone with ``vitcourse.experiments.dino.train_dino`` on the digits'
training split (1,438 images, labels unused), report the teacher diagnostics of the last 10 steps
(per-image entropy H, entropy of the batch-mean distribution Hm, KL teacher || student), then few-shot
1-NN (cosine) on backbone features, 1 / 5 / 20 labelled images per class (mean of 20 draws) and
k-NN (k = 20) with all labels, on the 359 test digits: the teacher's backbone, the same backbone at
its random initialisation, and raw pixels. Single thread.

    python benchmarks/05_dino.py --backbone vit --K 256 --teacher-temp 0.02 --momentum 0.99 --batch 64 \
        --steps 300 --head-bn --name vit                # the notebook's pretraining (section 6)
    python benchmarks/05_dino.py --backbone mlp --K 64 --batch 32 --steps 100 --momentum 0.97 \
        --teacher-temp 0.03 --head-bn --name mlp        # the chapter's regimes: add --no-centering
                                                        # or --teacher-temp 0.1, or drop --head-bn

What the search for a healthy regime found (MLP and global-average-pooled CNN backbones, K 64-1024,
teacher temperature 0.01-0.04, lr 1e-3-5e-3, momentum 0.98-0.996, batch 64-256, weaker crops, 0-6
local crops, a free last layer, a one-layer head): without BatchNorm in the head (``--head-bn``)
every small backbone collapsed within 100-300 steps. A random backbone and the head behind it give
all digits nearly parallel bottleneck vectors, so H == Hm within the first tens of steps; the run ends
at one distribution shared by every image (KL ~ 0), uniform or not. With ``--head-bn``
runs stay healthy (H < Hm, KL ~ 1). A lower teacher momentum (0.9) or no centering gives one-hot.

Each run is saved in benchmarks/results/05-dino.json under ``--name``.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from record import save
from torch import nn

from vitcourse import data
from vitcourse.analysis import features, few_shot_accuracy, knn_accuracy
from vitcourse.experiments.dino import DINOConfig, PixelMLP, train_dino
from vitcourse.models.dino import MultiCrop
from vitcourse.models.vit import digits_vit


class ConvNet(nn.Module):
    """Tiny CNN with global average pooling: reads 16 px and 8 px views alike. (B, 1, H, W) -> (B, dim)."""

    def __init__(self, dim: int = 64, width: int = 32, bn: bool = False):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), norm(width), nn.GELU(),
            nn.Conv2d(width, dim, 3, padding=1, stride=2), norm(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1),
        )

    def forward(self, x):
        return self.net(x).mean(dim=(2, 3))


BACKBONES = {
    "cnn": lambda dim: ConvNet(dim),
    "cnnbn": lambda dim: ConvNet(dim, bn=True),
    "mlp": lambda dim: PixelMLP(dim),
    "vit": lambda dim: digits_vit(num_classes=0, embed_dim=dim, mlp_ratio=2.0),  # output: the class token
}


def probe(net, train, test) -> dict:
    """Few-shot 1-NN and k-NN accuracy of ``net``'s features (``net`` None: raw pixels)."""
    (xtr, ytr), (xte, yte) = train, test
    ftr, fte = ((F.normalize(xtr.flatten(1), dim=-1), F.normalize(xte.flatten(1), dim=-1)) if net is None
                else (features(net, xtr), features(net, xte)))
    out = {f"{n}-shot": round(few_shot_accuracy(ftr, ytr, fte, yte, n), 3) for n in (1, 5, 20)}
    return out | {"knn20": round(knn_accuracy(ftr, ytr, fte, yte), 3)}


def run(a) -> dict:
    torch.set_num_threads(1)
    train, test = data.digits(16, "train").tensors, data.digits(16, "test").tensors
    crops = MultiCrop.tiny(num_local=a.num_local, global_scale=(a.gmin, 1.0), local_scale=(a.lmin, a.lmax),
                           color_jitter=(a.jitter, a.jitter, 0.0, 0.0))
    config = DINOConfig(
        steps=a.steps, batch=a.batch, crops=crops, K=a.K, hidden_dim=a.hidden, bottleneck_dim=a.bottleneck,
        nlayers=a.nlayers, norm_last_layer=not a.free_last_layer, use_bn=a.head_bn, teacher_temp=a.teacher_temp,
        teacher_temp_start=a.teacher_temp_start, teacher_temp_warmup=a.tt_warmup, student_temp=a.student_temp,
        center_momentum=1.0 if a.no_centering else a.center_momentum,
        momentum=(a.momentum, 1.0) if a.cosine else a.momentum, lr=a.lr, warmup=a.warmup, weight_decay=a.wd,
        clip=a.clip, seed=a.seed)
    result = train_dino(lambda: BACKBONES[a.backbone](a.dim), train[0], config, device="cpu", progress=True)
    last10 = {k: round(sum(v[-10:]) / 10, 3) for k, v in result.history.items()}
    return {
        "seconds": round(result.seconds, 1),
        "logK": round(math.log(a.K), 3),
        "last10": last10,
        "knn_teacher": probe(result.teacher.backbone, train, test),
        "knn_random_init": probe(result.initial, train, test),
        "knn_pixels": probe(None, train, test),
        "curve": {k: [round(x, 3) for x in v[::a.log_every]] for k, v in result.history.items()},
    }


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default=None, help="run name in the result file (default: the backbone)")
    p.add_argument("--backbone", default="cnn", choices=list(BACKBONES))
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
    p.add_argument("--no-centering", action="store_true", help="center momentum 1: the center stays 0")
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--cosine", action="store_true", help="teacher momentum from --momentum to 1 on a cosine")
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
    return p


if __name__ == "__main__":
    args = parser().parse_args()
    res = run(args)
    for key in ("seconds", "logK", "last10", "knn_teacher", "knn_random_init", "knn_pixels"):
        print(key, res[key])
    save("05-dino", args.name or args.backbone, res)
