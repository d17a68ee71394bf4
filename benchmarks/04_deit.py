"""Chapter 4: a CNN teacher on the digits, then the same small ViT trained three ways.

    python benchmarks/04_deit.py --budget tiny --seeds 0 1 2 3 4 5 6 7 8 9 --kinds hard
    python benchmarks/04_deit.py --budget full --seeds 0

The notebook's experiment (``vitcourse.experiments.deit``): the 16 px digits, standardised, with a
stratified, seeded training set; ``SmallCNN`` as the teacher; then the course's ``ViT(distilled=True)``
trained from the same initialisation with ``kind`` = "none", "soft" and "hard" on the same batches and
views (random cut-outs, and shifts in the full budget). Reports the test accuracy of each head (cls,
dist, avg) and each head's agreement with the teacher (the fraction of test images where both pick
the same class), on clean test images and on cut-out ones. Single thread. Each budget is saved in
benchmarks/results/04-deit.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from record import save

from vitcourse.experiments.deit import augment, digits_split, report, train_student, train_teacher
from vitcourse.models.vit import digits_vit

BUDGETS = {  # the notebook's two settings
    "tiny": {"train_size": 500, "teacher_steps": 300, "steps": 300, "batch": 64, "lr": 1e-2, "shift": 0, "erase": 6,
             "vit": {"embed_dim": 32, "depth": 2, "num_heads": 2}},
    "full": {"train_size": 1200, "teacher_steps": 600, "steps": 1500, "batch": 128, "lr": 3e-3, "shift": 1, "erase": 4,
             "vit": {"embed_dim": 64, "depth": 4, "num_heads": 4}},
}


def run(seed: int, cfg: dict, kinds, alpha: float, tau: float) -> dict:
    xtr, ytr, xte, yte = digits_split(seed, cfg["train_size"])
    xte_cut = augment(xte, torch.Generator().manual_seed(2000 + seed), erase=cfg["erase"])
    start = time.perf_counter()
    teacher = train_teacher(xtr, ytr, steps=cfg["teacher_steps"], seed=seed, batch=cfg["batch"], device="cpu")
    with torch.no_grad():
        out = {"teacher_seconds": round(time.perf_counter() - start, 1),
               "teacher_acc": (teacher(xte).argmax(1) == yte).float().mean().item(),
               "teacher_acc_cut": (teacher(xte_cut).argmax(1) == yte).float().mean().item()}
    for kind in kinds:
        start = time.perf_counter()
        student = train_student(lambda: digits_vit(distilled=True, **cfg["vit"]), teacher, kind, xtr, ytr,
                                steps=cfg["steps"], seed=seed, batch=cfg["batch"], lr=cfg["lr"], shift=cfg["shift"],
                                erase=cfg["erase"], alpha=alpha, tau=tau, device="cpu")
        out[kind] = {"seconds": round(time.perf_counter() - start, 1),
                     "clean": report(student, teacher, xte, yte), "cut": report(student, teacher, xte_cut, yte)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", default="tiny", choices=list(BUDGETS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--tau", type=float, default=1.0)
    p.add_argument("--kinds", nargs="+", default=["none", "soft", "hard"])
    a = p.parse_args()
    torch.set_num_threads(1)
    cfg = BUDGETS[a.budget]
    print(f"budget {a.budget}: {cfg} alpha={a.alpha} tau={a.tau}")
    results = {}
    for seed in a.seeds:
        r = results[seed] = run(seed, cfg, a.kinds, a.alpha, a.tau)
        print(f"seed {seed}: teacher {r['teacher_acc']:.3f} (cut-out {r['teacher_acc_cut']:.3f}), "
              f"trained in {r['teacher_seconds']:.1f}s")
        for kind in a.kinds:
            for view in ("clean", "cut"):
                m = r[kind][view]
                print(f"  {kind:5s} {view:5s} acc cls {m['cls'][0]:.3f} dist {m['dist'][0]:.3f} avg {m['avg'][0]:.3f}"
                      f" | agree cls {m['cls'][1]:.3f} dist {m['dist'][1]:.3f} avg {m['avg'][1]:.3f}")
            print(f"  {kind:5s} {r[kind]['seconds']:.1f}s", flush=True)
    save("04-deit", a.budget, {"config": cfg, "alpha": a.alpha, "tau": a.tau, "kinds": a.kinds, "seeds": results})


if __name__ == "__main__":
    main()
