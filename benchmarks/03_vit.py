"""Chapter 3: speed of the course ViT against timm, and the digits training run.

    python benchmarks/03_vit.py speed [--threads 2] [--repeats 15]
    python benchmarks/03_vit.py digits [--threads 2] [--seeds 0 1 2 3 4] [--epochs 60] [--shift 1]

speed: forward+backward of ViT-Ti/16 (batch 8, 224 px) with identical weights, the course model and
timm's interleaved run by run; prints the medians and their ratio (course / timm).
digits: trains the digits ViT of chapter 3 (``digits_vit()``) and prints accuracy, wall seconds and CPU
seconds (process time: on a shared machine it stays close to what an idle one would take with one thread).
Run them on an otherwise idle machine. Results go to benchmarks/results/03-vit.json, from which the
reading page renders its table:

    python benchmarks/03_vit.py digits --threads 1 --seeds 0 1 2 3 4 --epochs 30 --shift 0
    python benchmarks/03_vit.py digits --threads 1 --seeds 0 1 2 3 4 --epochs 60 --shift 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
from record import save

from vitcourse import data, train
from vitcourse.convert import from_timm
from vitcourse.models.vit import digits_vit


def _step(model, x):
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()


def speed(repeats: int) -> None:
    torch.manual_seed(0)
    theirs = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    ours = from_timm(theirs)
    ours.train(), theirs.train()
    x = torch.randn(8, 3, 224, 224)
    for model in (ours, theirs):  # warm-up
        _step(model, x)
    times = {"course": [], "timm": []}
    for _ in range(repeats):
        for name, model in (("course", ours), ("timm", theirs)):
            start = time.perf_counter()
            _step(model, x)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"ViT-Ti/16, batch 8, forward+backward, {repeats} interleaved runs, {torch.get_num_threads()} threads")
    print(f"  course ViT  median {med['course'] * 1e3:7.1f} ms")
    print(f"  timm        median {med['timm'] * 1e3:7.1f} ms")
    print(f"  ratio course/timm  {med['course'] / med['timm']:.3f}")
    save("03-vit", "speed", {"course_ms": round(med["course"] * 1e3, 1), "timm_ms": round(med["timm"] * 1e3, 1),
                             "ratio": round(med["course"] / med["timm"], 3), "repeats": repeats})


def digits(seeds: list[int], epochs: int, shift: int) -> None:
    accs, seconds, cpu_seconds = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        train_loader, test_loader = data.digits_loaders(batch_size=64, img_size=16, shift=shift)
        model = digits_vit()
        start, cpu_start = time.perf_counter(), time.process_time()
        history = train.fit(model, train_loader, epochs=epochs, lr=3e-3, warmup_steps=100,
                            eval_loader=test_loader, progress=False)
        accs.append(history.test_acc[-1])
        seconds.append(round(time.perf_counter() - start, 1))
        cpu_seconds.append(round(time.process_time() - cpu_start, 1))
        print(f"digits, ViT dim 64 depth 4 patch 4 at 16 px, shifts <= {shift} px, seed {seed}, {epochs} epochs: "
              f"test accuracy {history.test_acc[-1]:.4f} (best epoch {max(history.test_acc):.4f}) in "
              f"{seconds[-1]:.1f} s ({cpu_seconds[-1]:.1f} CPU s), {torch.get_num_threads()} threads", flush=True)
    if len(accs) > 1:
        print(f"  final accuracy over {len(accs)} seeds: min {min(accs):.4f}, median {statistics.median(accs):.4f}, "
              f"max {max(accs):.4f}")
    save("03-vit", f"digits, {epochs} epochs, shift {shift}, {torch.get_num_threads()} threads",
         {"epochs": epochs, "shift": shift, "seeds": seeds, "test_acc": accs, "seconds": seconds,
          "cpu_seconds": cpu_seconds, "train_images": len(train_loader.dataset),
          "test_images": len(test_loader.dataset)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "digits"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--shift", type=int, default=1, help="random translation of training digits, pixels")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speed(args.repeats) if args.what == "speed" else digits(args.seeds, args.epochs, args.shift)
