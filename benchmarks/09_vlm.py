"""Chapter 9: the tiny CLIP on the digits over seeds, and the vision towers against the course ViT.

    .venv/bin/python benchmarks/09_vlm.py                      # every variant, seeds 0-9, 2 threads
    .venv/bin/python benchmarks/09_vlm.py --variants siglip_b16 clip_b16 --no-towers --merge

Variants (all: course ViT image tower and ``TextTower`` of depth 1, width 64, AdamW 3e-3 with a cosine
schedule, images standardised, one training caption per image and step):

- ``recipe``: CLIP loss, batch 128, 300 steps, logit_scale initialised to log(3);
- ``graded``: the same for ``--graded-steps`` steps, the run the notebook's graded cell makes;
- ``clip_init``: the recipe with CLIP's initial temperature, logit_scale = log(1/0.07);
- ``siglip``: the recipe with SigLIP's loss and initialisation (log 10 and bias -10);
- ``siglip_b16`` and ``clip_b16``: batch 16 for 600 steps, logit_scale log(3) (and bias -log 16 for
  SigLIP, the log-odds of one positive among 16): a batch of 128 digits holds about 13 of each class,
  whose captions both losses count as negatives; with 16 there are fewer.
- ``siglip_b128_t3``: the control for ``siglip``: SigLIP at batch 128 (300 steps) started where
  ``siglip_b16`` starts (logit_scale log(3), bias -log 16), so that the batch size is what differs
  from ``siglip_b16`` and the starting temperature and bias what differ from ``siglip``.

``--merge`` keeps the other variants of an existing result file and replaces those run now.

For each seed: zero-shot accuracy on the held-out digits (prompts: the held-out caption templates of
the ten classes) and image -> caption recall@1 (one held-out caption per image), before and after
training, and the training time. ``--towers`` (default on) also converts timm's full-size CLIP and
SigLIP towers and small Hugging Face models and records their max abs difference to the course ViT.
The result goes to ``benchmarks/results/09-vlm.json``; the reading page renders its tables from it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import sys

import torch

from vitcourse.models.vlm import siglip_loss
from vitcourse.models.vlm_train import (
    digit_tensors,
    evaluate_two_tower,
    make_two_tower,
    train_two_tower,
)

RESULT = pathlib.Path(__file__).resolve().parent / "results" / "09-vlm.json"
RECIPE = {"steps": 300, "batch_size": 128, "lr": 3e-3, "depth": 1, "width": 64, "embed_dim": 64,
          "init_logit_scale": math.log(3.0)}
VARIANTS = ("recipe", "graded", "clip_init", "siglip", "siglip_b16", "clip_b16", "siglip_b128_t3")


def run_variant(variant: str, seed: int, data, graded_steps: int) -> dict:
    x_train, y_train, x_test, y_test = data
    steps = {"graded": graded_steps, "siglip_b16": 600, "clip_b16": 600}.get(variant, RECIPE["steps"])
    batch_size = 16 if variant.endswith("_b16") else RECIPE["batch_size"]
    init = {"init_logit_scale": RECIPE["init_logit_scale"]}
    loss_fn = None
    if variant == "clip_init":
        init = {"init_logit_scale": math.log(1 / 0.07)}
    if variant == "siglip":
        init, loss_fn = {"init_logit_scale": math.log(10.0), "init_logit_bias": -10.0}, siglip_loss
    if variant in ("siglip_b16", "siglip_b128_t3"):
        init, loss_fn = {"init_logit_scale": RECIPE["init_logit_scale"], "init_logit_bias": -math.log(16)}, siglip_loss
    model = make_two_tower(seed, depth=RECIPE["depth"], width=RECIPE["width"], embed_dim=RECIPE["embed_dim"], **init)
    before = evaluate_two_tower(model, x_test, y_test)
    run = train_two_tower(model, x_train, y_train, steps=steps, batch_size=batch_size, lr=RECIPE["lr"],
                          seed=seed, loss_fn=loss_fn)
    after = evaluate_two_tower(model, x_test, y_test)
    return {"seed": seed, "steps": steps, "batch_size": batch_size,
            "zero_shot_init": before["zero_shot"], "recall_at_1_init": before["recall_at_1"],
            "zero_shot": after["zero_shot"], "recall_at_1": after["recall_at_1"],
            "recall_gain": after["recall_at_1"] - before["recall_at_1"], "seconds": run["seconds"],
            "final_loss": run["loss"][-1], "final_temperature_multiplier": model.logit_scale.exp().item()}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for key in ("zero_shot", "recall_at_1", "recall_at_1_init", "recall_gain", "seconds"):
        values = [r[key] for r in rows]
        out[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    return out


def tower_differences() -> dict:
    """Max abs difference between each source model and its course ViT (random init, perturbed weights)."""
    import timm

    from vitcourse.convert import from_timm, from_transformers, perturb

    diffs = {}
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for name, kwargs in (("vit_base_patch16_clip_224", {}), ("vit_base_patch16_clip_quickgelu_224", {}),
                         ("vit_base_patch16_siglip_224", {}),
                         ("vit_tiny_patch16_224", {"global_pool": "avg", "fc_norm": False})):
        torch.manual_seed(0)
        source = perturb(timm.create_model(name, pretrained=False, **kwargs))
        with torch.no_grad():
            diff = (from_timm(source).eval()(x) - source(x)).abs().max().item()
        label = name + "".join(f" {k}={v}" for k, v in kwargs.items())
        diffs[f"timm {label} (logits)"] = diff
        print(f"  {label}: {diff:.2e}", flush=True)
    try:
        import transformers
    except ImportError:
        return diffs
    common = {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 8}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    models = {"ViTModel": transformers.ViTModel(transformers.ViTConfig(intermediate_size=96, **common)),
              "Dinov2Model": transformers.Dinov2Model(transformers.Dinov2Config(mlp_ratio=2, **common)),
              "CLIPVisionModel": transformers.CLIPVisionModel(transformers.CLIPVisionConfig(intermediate_size=96, **common))}
    for name, model in models.items():
        torch.manual_seed(0)
        source = perturb(model)
        ours = from_transformers(source).eval()
        with torch.no_grad():
            out = source(pixel_values=x)
            if name == "CLIPVisionModel":
                diff = (ours(x) - out.pooler_output).abs().max().item()
                what = "pooler_output"
            else:
                diff = (ours.forward_features(x) - out.last_hidden_state).abs().max().item()
                what = "last_hidden_state"
        diffs[f"transformers {name} ({what})"] = diff
        print(f"  {name}: {diff:.2e}", flush=True)
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--graded-steps", type=int, default=120)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--towers", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=pathlib.Path, default=RESULT)
    parser.add_argument("--merge", action="store_true", help="keep the other variants of an existing --out file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = " ".join(["python", "benchmarks/09_vlm.py", *sys.argv[1:]])
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_average_at_start": list(os.getloadavg())}
    result = {"commands": [], "runs": {}, "summary": {}}
    if args.merge and args.out.is_file():
        result = json.loads(args.out.read_text())
    result["commands"].append({"command": command, "date": now, "variants": args.variants, "machine": machine})
    result.update(torch=torch.__version__, recipe=RECIPE, graded_steps=args.graded_steps)
    data = digit_tensors()
    for variant in args.variants:
        rows = []
        for seed in args.seeds:
            rows.append(run_variant(variant, seed, data, args.graded_steps))
            r = rows[-1]
            print(f"{variant:>9} seed {seed}: zero-shot {r['zero_shot']:.3f}  recall@1 {r['recall_at_1_init']:.3f} -> "
                  f"{r['recall_at_1']:.3f}  ({r['seconds']:.1f} s)", flush=True)
        result["runs"][variant], result["summary"][variant] = rows, summarise(rows)
    if args.towers:
        print("vision towers against the course ViT (max abs difference):")
        result["towers"] = tower_differences()
    machine["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
