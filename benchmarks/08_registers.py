"""Chapter 8: does a small ViT park global information in background tokens? And how far out does the
largest norm of clean features lie?

    python benchmarks/08_registers.py --steps 1500 --seeds 0
    python benchmarks/08_registers.py --clean              # why k = 6 in find_artifact_tokens

The notebook's task and measurements (``vitcourse.experiments.registers``): 24 x 24 canvases with two
digits, labelled "same class or not". The same ViT (patch 4, DINOv2's convention of position
embeddings on the patches only; LayerScale with ``--init-values``) is trained with R = 0 and R = 4
registers on the same canvases, seed and steps. On held-out canvases it reports accuracy, the norms
of background and ink patch tokens leaving
the last block, the fraction flagged by ``find_artifact_tokens`` (median + 6 robust standard
deviations) and where the class token attends in the last block. Single thread. Saved in
benchmarks/results/08-registers.json.

``--clean`` measures, for clean Gaussian features of several widths and token counts (no artifact at
all), how many robust standard deviations (1.4826 * MAD) above the median the largest token norm lies:
the margin that ``k = 6`` leaves. Saved as the run "clean Gaussian features".
"""

from __future__ import annotations

import argparse
import time

import torch
from record import save

from vitcourse.experiments.registers import CANVAS, digit_pairs, measure, train_pairs
from vitcourse.models.registers import MAD_TO_STD
from vitcourse.models.vit import digits_vit


def clean_extremes(dims=(2, 8, 32, 128, 384), tokens=(1_000, 10_000, 100_000), seeds=(0, 1, 2)) -> dict:
    """The largest norm of clean Gaussian features, in robust standard deviations above the median."""
    rows = []
    for dim in dims:
        for n in tokens:
            for seed in seeds:
                g = torch.Generator().manual_seed(seed)
                norms = torch.randn(n, dim, generator=g).norm(dim=-1)
                med = norms.median()
                sd = MAD_TO_STD * (norms - med).abs().median()
                rows.append({"dim": dim, "tokens": n, "seed": seed, "max_robust_z": round(float((norms.max() - med) / sd), 2)})
                print(rows[-1], flush=True)
    z = [r["max_robust_z"] for r in rows]
    return {"rows": rows, "min_max_robust_z": min(z), "max_max_robust_z": max(z)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--registers", type=int, nargs="+", default=[0, 4])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--init-values", type=float, default=None, help="LayerScale initial value (default: none)")
    p.add_argument("--train", type=int, default=4000, help="training canvases")
    p.add_argument("--test", type=int, default=1000, help="test canvases")
    p.add_argument("--clean", action="store_true", help="measure the largest norm of clean features instead")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.clean:
        save("08-registers", "clean Gaussian features", clean_extremes())
        return
    print(vars(a))
    results = {}
    for seed in a.seeds:
        xtr, ytr, _ = digit_pairs(a.train, seed, "train")
        xte, yte, ink = digit_pairs(a.test, seed + 100, "test")
        for R in a.registers:
            start = time.perf_counter()
            make = lambda R=R: digits_vit(img_size=CANVAS, num_classes=2, embed_dim=a.dim, depth=a.depth,
                                          num_heads=a.heads, num_registers=R, no_embed_class=True,
                                          init_values=a.init_values)
            model = train_pairs(make, xtr, ytr, a.steps, seed=seed, lr=a.lr, device="cpu")
            r = measure(model, R, xte, yte, ink) | {"seconds": round(time.perf_counter() - start, 1)}
            results[f"seed {seed}, R={R}"] = r
            print(f"seed {seed} R={R}: " + " ".join(f"{k} {v:.3f}" for k, v in r.items() if v is not None), flush=True)
    name = f"steps {a.steps}" + (f", LayerScale {a.init_values:g}" if a.init_values else "")
    save("08-registers", name, {"args": vars(a), "runs": results})


if __name__ == "__main__":
    main()
