"""Chapter 9: the tiny CLIP on the digits over seeds, and the vision towers against the course ViT.

    .venv/bin/python benchmarks/09_vlm.py                      # every variant, seeds 0-9, 2 threads
    .venv/bin/python benchmarks/09_vlm.py --variants siglip_b16 clip_b16 --no-towers

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

For each seed: zero-shot accuracy on the held-out digits (prompts: the held-out caption templates of
the ten classes) and image -> caption recall@1 (one held-out caption per image), before and after
training, and the training time. ``--towers`` (default on) also converts timm's full-size CLIP and
SigLIP towers and small Hugging Face models and records their max abs difference to the course ViT.
Each variant is saved as one run of ``benchmarks/results/09-vlm.json`` (``record.save``: its settings,
the rows of its seeds and their summary), the tower comparison as the run ``towers``; variants not
run keep their entries. The reading page renders its tables from the file.
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from record import save

from vitcourse.experiments.vlm import (
    digit_tensors,
    evaluate_two_tower,
    make_two_tower,
    train_two_tower,
)
from vitcourse.models.vlm import siglip_loss

RECIPE = {"steps": 300, "batch_size": 128, "lr": 3e-3, "depth": 1, "width": 64, "embed_dim": 64,
          "init_logit_scale": math.log(3.0)}
VARIANTS = ("recipe", "graded", "clip_init", "siglip", "siglip_b16", "clip_b16", "siglip_b128_t3")


def settings(variant: str, graded_steps: int) -> dict:
    """The recipe with the variant's changes: steps, batch, initial temperature (and bias), loss."""
    out = RECIPE | {"loss": "clip", "init_logit_bias": None}
    if variant == "graded":
        out["steps"] = graded_steps
    if variant.endswith("_b16"):
        out |= {"steps": 600, "batch_size": 16}
    if variant == "clip_init":
        out["init_logit_scale"] = math.log(1 / 0.07)
    if variant == "siglip":
        out |= {"loss": "siglip", "init_logit_scale": math.log(10.0), "init_logit_bias": -10.0}
    if variant in ("siglip_b16", "siglip_b128_t3"):  # the log-odds of one positive among 16
        out |= {"loss": "siglip", "init_logit_bias": -math.log(16)}
    return out


def run_variant(s: dict, seed: int, data) -> dict:
    """One seed of a variant with settings ``s``: accuracy before and after training, time, final loss."""
    x_train, y_train, x_test, y_test = data
    bias = {} if s["init_logit_bias"] is None else {"init_logit_bias": s["init_logit_bias"]}
    model = make_two_tower(seed, depth=s["depth"], width=s["width"], embed_dim=s["embed_dim"],
                           init_logit_scale=s["init_logit_scale"], **bias)
    before = evaluate_two_tower(model, x_test, y_test)
    run = train_two_tower(model, x_train, y_train, steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"],
                          seed=seed, loss_fn=siglip_loss if s["loss"] == "siglip" else None)
    after = evaluate_two_tower(model, x_test, y_test)
    return {"seed": seed, "zero_shot_init": before["zero_shot"], "recall_at_1_init": before["recall_at_1"],
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = digit_tensors()
    for variant in args.variants:
        s, rows = settings(variant, args.graded_steps), []
        for seed in args.seeds:
            rows.append(run_variant(s, seed, data))
            r = rows[-1]
            print(f"{variant:>9} seed {seed}: zero-shot {r['zero_shot']:.3f}  recall@1 {r['recall_at_1_init']:.3f} -> "
                  f"{r['recall_at_1']:.3f}  ({r['seconds']:.1f} s)", flush=True)
        save("09-vlm", variant, {"settings": s, "seeds": rows, "summary": summarise(rows)})
    if args.towers:
        print("vision towers against the course ViT (max abs difference):")
        save("09-vlm", "towers", tower_differences())


if __name__ == "__main__":
    main()
