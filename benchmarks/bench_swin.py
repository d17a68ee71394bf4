"""Swin measurements for chapter 7.

    python benchmarks/bench_swin.py speed     # course Swin-T vs timm, forward+backward, ratio of medians
    python benchmarks/bench_swin.py scaling   # MACs of Swin-T and ViT-S/16 as the input grows (meta device)

scaling counts with FlopCounterMode on the meta device (no memory, exact counts); sizes are multiples
of 224 so Swin's windows tile every stage.
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

from vitcourse.convert import from_timm
from vitcourse.flops import measured_macs
from vitcourse.models.swin import SwinTransformer
from vitcourse.models.vit import ViT


def speed(repeats: int) -> None:
    torch.manual_seed(0)
    theirs = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).train()
    ours = from_timm(theirs).train()
    x = torch.randn(2, 3, 224, 224)
    times = {"course": [], "timm": []}
    for model in (ours, theirs):
        model(x).sum().backward()
    for _ in range(repeats):
        for name, model in (("course", ours), ("timm", theirs)):
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            model(x).sum().backward()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"Swin-T, batch 2, forward+backward, {repeats} interleaved runs, {torch.get_num_threads()} threads: "
          f"course {med['course'] * 1e3:.0f} ms, timm {med['timm'] * 1e3:.0f} ms, ratio {med['course'] / med['timm']:.3f}")


def scaling() -> None:
    print(f"{'pixels':>6} {'Swin-T GMACs':>13} {'ViT-S/16 GMACs':>15} {'ratio':>6}")
    base = None
    for size in (224, 448, 672, 896):
        with torch.device("meta"):
            swin = SwinTransformer(img_size=224, num_classes=1000)
            vit = ViT(img_size=size, patch_size=16, embed_dim=384, depth=12, num_heads=6)
        s, v = measured_macs(swin, (1, 3, size, size)), measured_macs(vit, (1, 3, size, size))
        base = base or (s, v)
        print(f"{size:>6} {s / 1e9:>9.2f} ({s / base[0]:4.1f}x) {v / 1e9:>9.2f} ({v / base[1]:5.1f}x) {v / s:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "scaling"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speed(args.repeats) if args.what == "speed" else scaling()
