"""Chapter 7: Swin measurements quoted on the reading page.

    python benchmarks/07_swin.py speed     # course Swin-T vs timm, forward+backward, ratio of medians
    python benchmarks/07_swin.py scaling [--plot PATH]  # MACs (meta device) and CPU forward time,
                                                        # Swin-T vs ViT-S/16, 224..896 px, batch 1
    python benchmarks/07_swin.py worked    # the 1024-px comparison: Swin-B vs ViT-L/14, measured MACs

scaling counts with FlopCounterMode on the meta device (no memory, exact counts); sizes are multiples
of 224 so Swin's windows tile every stage. Results go to benchmarks/results/07-swin.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
from record import save

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
          f"course {med['course'] * 1e3:.0f} ms, timm {med['timm'] * 1e3:.0f} ms, "
          f"ratio {med['course'] / med['timm']:.3f}")
    save("07-swin", "speed", {"course_ms": round(med["course"] * 1e3, 1), "timm_ms": round(med["timm"] * 1e3, 1),
                              "ratio": round(med["course"] / med["timm"], 3), "repeats": repeats})


def _forward_ms(model: torch.nn.Module, size: int, repeats: int) -> float:
    x = torch.randn(1, 3, size, size)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def scaling(repeats: int, plot: str | None) -> None:
    sizes = (224, 448, 672, 896)
    print(f"{'pixels':>6} {'Swin-T GMACs':>16} {'ViT-S/16 GMACs':>17} {'Swin-T ms':>10} {'ViT-S ms':>9}")
    rows = []
    for size in sizes:
        torch.manual_seed(0)
        swin = SwinTransformer(img_size=224, num_classes=1000).eval()
        vit = ViT(img_size=size, patch_size=16, embed_dim=384, depth=12, num_heads=6).eval()
        s, v = measured_macs(swin, (1, 3, size, size)), measured_macs(vit, (1, 3, size, size))
        ts, tv = _forward_ms(swin, size, repeats), _forward_ms(vit, size, repeats)
        rows.append((size, s, v, ts, tv))
        print(f"{size:>6} {s / 1e9:>8.2f} ({s / rows[0][1]:4.1f}x) {v / 1e9:>8.2f} ({v / rows[0][2]:5.1f}x) "
              f"{ts:>10.0f} {tv:>9.0f}")
    save("07-swin", "scaling", {"repeats": repeats, "rows": [
        {"pixels": size, "swin_gmacs": round(s / 1e9, 2), "vit_gmacs": round(v / 1e9, 2), "swin_ms": round(ts),
         "vit_ms": round(tv)} for size, s, v, ts, tv in rows]})
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        px = [r[0] ** 2 / 224**2 for r in rows]
        for ax, (i, j), label in ((axes[0], (1, 2), "GMACs (measured)"), (axes[1], (3, 4), "CPU forward ms")):
            ax.plot(px, [r[i] / (1e9 if i == 1 else 1) for r in rows], "o-", label="Swin-T")
            ax.plot(px, [r[j] / (1e9 if j == 2 else 1) for r in rows], "s-", label="ViT-S/16")
            ax.set_xlabel("pixels / 224^2")
            ax.set_ylabel(label)
            ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        print("plot saved to", plot)


def worked() -> None:
    """Swin-B (embed 128, depths 2-2-18-2) vs ViT-L/14 at ~1024 px, MACs measured on the meta device.

    Swin with window 7 needs multiples of 224, so 1024 is padded to 1120 (as detection code pads);
    ViT-L/14 sees 1022 = 73 * 14 pixels (the stride-14 conv drops the last 2): 73^2 + 1 = 5330 tokens.
    """
    with torch.device("meta"):
        swin_b = SwinTransformer(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
        vit_l = ViT(img_size=1022, patch_size=14, embed_dim=1024, depth=24, num_heads=16)
    s, v = measured_macs(swin_b, (1, 3, 1120, 1120)), measured_macs(vit_l, (1, 3, 1022, 1022))
    n, d = 5330, 1024
    attn_vit = 24 * 2 * n * n * d  # QK^T and attn @ V, per layer, in MACs
    print(f"ViT-L/14 @1022: {v / 1e9:.0f} GMACs total, of which attention matrices {attn_vit / 1e9:.0f} GMACs")
    print(f"Swin-B  @1120 (1024 padded): {s / 1e9:.0f} GMACs total")
    print(f"ratio ViT-L / Swin-B: {v / s:.1f}x")
    save("07-swin", "worked", {"vit_l14_1022_gmacs": round(v / 1e9), "vit_attention_gmacs": round(attn_vit / 1e9),
                               "swin_b_1120_gmacs": round(s / 1e9), "ratio": round(v / s, 1)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "scaling", "worked"])
    parser.add_argument("--plot", default=None, help="scaling: save the plot to this path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "speed":
        speed(args.repeats)
    elif args.what == "scaling":
        scaling(args.repeats, args.plot)
    else:
        worked()
