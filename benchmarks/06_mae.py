"""Chapter 6: MAE measurements quoted on the reading page.

    python benchmarks/06_mae.py probe      # linear probe of the encoder: pre-trained vs random init
    python benchmarks/06_mae.py speed      # encoder forward time at mask ratios 0, 0.5, 0.75, 0.9

probe: the digits MAE (``MAE()``: width 64, depth 4, patch 4 on 16 px digits) pre-trained with
``vitcourse.experiments.mae.pretrain`` for 0 / 400 / 1500 steps; logistic regression on the mean of
its patch tokens (mask ratio 0), test accuracy; raw pixels for scale.
speed: a ViT-S/16 encoder (12 blocks, 224 px, batch 8), forward only, median of 5 interleaved runs.
Results go to benchmarks/results/06-mae.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from record import save
from sklearn.linear_model import LogisticRegression

from vitcourse import data
from vitcourse.experiments.mae import pretrain
from vitcourse.models.mae import MAE


def _features(model, images):
    model.eval()
    with torch.no_grad():
        # mask ratio 0 keeps every token; the fixed generator fixes their (shuffled) order, and so the sums
        latent = model.forward_encoder(images, 0.0, generator=torch.Generator().manual_seed(0))[0]
        return latent[:, 1:].mean(dim=1).numpy()


def probe() -> None:
    train, test = data.digits(16, "train").tensors, data.digits(16, "test").tensors
    pixels = LogisticRegression(max_iter=3000).fit(train[0].flatten(1).numpy(), train[1].numpy())
    result = {"raw pixels": round(pixels.score(test[0].flatten(1).numpy(), test[1].numpy()), 3)}
    print(f"raw pixels: {result['raw pixels']:.3f}")
    for steps in (0, 400, 1500):
        torch.manual_seed(0)
        model = MAE()
        pretrain(model, train[0], steps, seed=0, device="cpu")
        clf = LogisticRegression(max_iter=3000).fit(_features(model, train[0]), train[1].numpy())
        result[f"{steps} steps"] = round(clf.score(_features(model, test[0]), test[1].numpy()), 3)
        print(f"MAE encoder after {steps:>4} pre-training steps: linear probe {result[f'{steps} steps']:.3f}")
    save("06-mae", "probe", result)


def speed() -> None:
    model = MAE(img_size=224, patch_size=16, in_chans=3, embed_dim=384, depth=12, num_heads=6, decoder_embed_dim=128,
                decoder_depth=1).eval()
    x = torch.rand(8, 3, 224, 224)
    ratios = (0.0, 0.5, 0.75, 0.9)
    times = {r: [] for r in ratios}
    with torch.no_grad():
        for r in ratios:
            model.forward_encoder(x, r)
        for _ in range(5):
            for r in ratios:
                start = time.perf_counter()
                model.forward_encoder(x, r)
                times[r].append(time.perf_counter() - start)
    base = statistics.median(times[0.0])
    result = {}
    for r in ratios:
        t = statistics.median(times[r])
        result[f"{r:.2f}"] = {"tokens": 1 + int(196 * (1 - r)), "ms": round(t * 1e3, 1), "speedup": round(base / t, 2)}
        print(f"mask ratio {r:.2f}: {1 + int(196 * (1 - r)):>3} tokens, {t * 1e3:7.1f} ms, speed-up {base / t:.2f}x "
              f"({torch.get_num_threads()} threads)")
    save("06-mae", "speed", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["probe", "speed"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probe() if args.what == "probe" else speed()
