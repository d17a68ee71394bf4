"""Chapter 9: a tiny CLIP on the bundled digits, trained on a CPU in seconds.

- Captions: every digit image gets a short caption from a template ("a handwritten seven", "the
  digit 7", ...). ``TRAIN_TEMPLATES`` are used for training; ``HELDOUT_TEMPLATES`` recombine the same
  words in phrasings never seen in training and are used for zero-shot prompts and retrieval.
- ``Vocab`` / ``tokenize``: one token per word, ``<eos>`` after the caption, ``<pad>`` after that.
- ``digit_tensors``: the digits, standardised.
- ``make_two_tower``, ``train_two_tower`` and ``evaluate_two_tower``: the chapter's recipe, a course
  ``ViT`` and a ``vitcourse.models.vlm.TextTower`` joined by a ``TwoTower`` (see
  ``benchmarks/09_vlm.py`` for its numbers over seeds).

Every random draw comes from a generator seeded with the functions' ``seed``: the caller's global
random state is left as it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitcourse import env
from vitcourse.analysis import recall_at_1, zero_shot_accuracy
from vitcourse.models.vit import ViT
from vitcourse.models.vlm import EOS, PAD, TextTower, TwoTower, clip_loss

__all__ = [
    "HELDOUT_TEMPLATES",
    "NAMES",
    "MAX_LEN",
    "TRAIN_TEMPLATES",
    "VOCAB",
    "Vocab",
    "caption",
    "class_prompts",
    "digit_tensors",
    "evaluate_two_tower",
    "make_two_tower",
    "random_captions",
    "tokenize",
    "train_two_tower",
]

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# {name} is the digit's word, {num} its numeral.
TRAIN_TEMPLATES = (
    "a handwritten {name}",
    "the digit {num}",
    "a photo of the number {name}",
    "a drawing of the digit {name}",
    "the number {num}",
    "a handwritten digit {num}",
)
HELDOUT_TEMPLATES = (
    "a photo of the digit {num}",
    "the handwritten number {name}",
    "a drawing of the number {num}",
)


def caption(label: int, template: str) -> str:
    return template.format(name=NAMES[label], num=str(label))


def random_captions(labels: torch.Tensor, templates=TRAIN_TEMPLATES, generator: torch.Generator | None = None) -> list[str]:
    """One caption per label, each from a template drawn at random."""
    pick = torch.randint(0, len(templates), (len(labels),), generator=generator)
    return [caption(int(y), templates[int(t)]) for y, t in zip(labels, pick)]


class Vocab:
    """Word-level vocabulary: id 0 is ``<pad>``, 1 is ``<eos>``, then the words in sorted order."""

    PAD, EOS = PAD, EOS  # the ids TextTower reads

    def __init__(self, words) -> None:
        self.words = ["<pad>", "<eos>"] + sorted(set(words))
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str, max_len: int) -> list[int]:
        unknown = [w for w in text.split() if w not in self.index]
        if unknown:
            raise ValueError(f"word {unknown[0]!r} is not in the vocabulary of {len(self)} words")
        ids = [self.index[w] for w in text.split()] + [self.EOS]
        if len(ids) > max_len:
            raise ValueError(f"{text!r} needs {len(ids)} tokens with <eos>; max_len is {max_len}")
        return ids + [self.PAD] * (max_len - len(ids))


def _all_words() -> set[str]:
    words = set()
    for t in TRAIN_TEMPLATES + HELDOUT_TEMPLATES:
        for y in range(10):
            words.update(caption(y, t).split())
    return words


VOCAB = Vocab(_all_words())
MAX_LEN = 8


def tokenize(texts: list[str], vocab: Vocab = VOCAB, max_len: int = MAX_LEN) -> torch.Tensor:
    """Captions -> token ids (B, max_len), ``<eos>`` after each caption, padded with ``<pad>``."""
    return torch.tensor([vocab.encode(t, max_len) for t in texts], dtype=torch.long)


def digit_tensors(img_size: int = 16, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(train_images, train_labels, test_images, test_labels) of the bundled digits, images standardised
    with the training set's mean and standard deviation (without it the image tower's outputs start
    nearly identical for every digit, and contrastive training stalls)."""
    from vitcourse.data import digits

    x_train, y_train = digits(img_size, "train", seed=seed).tensors
    x_test, y_test = digits(img_size, "test", seed=seed).tensors
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def make_two_tower(seed: int = 0, img_size: int = 16, width: int = 64, depth: int = 2, embed_dim: int = 64,
                   text_pool: str = "eos", two_tower_cls=TwoTower, **kwargs) -> nn.Module:
    """The chapter's tiny CLIP: a course ViT (patch 4, one channel, mean pooling) and a ``TextTower``.

    ``two_tower_cls`` builds the joint model from (image_tower, text_tower, image_dim, text_dim,
    embed_dim, **kwargs), so a notebook can pass its own class. The weights are drawn with ``seed``,
    the caller's random state is left alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image_tower = ViT(img_size=img_size, patch_size=4, in_chans=1, num_classes=0, embed_dim=width, depth=depth,
                          num_heads=4, class_token=False, global_pool="avg")
        text_tower = TextTower(len(VOCAB), MAX_LEN, width=width, depth=depth, pool=text_pool)
        return two_tower_cls(image_tower, text_tower, width, width, embed_dim, **kwargs)


def class_prompts(templates=HELDOUT_TEMPLATES) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of every (class, template) caption, (10 * T, L), and their labels (10 * T,)."""
    texts = [caption(y, t) for y in range(10) for t in templates]
    return tokenize(texts), torch.arange(10).repeat_interleave(len(templates))


def _class_embeddings(model: nn.Module, templates=HELDOUT_TEMPLATES) -> torch.Tensor:
    """One embedding per class: the normalised mean over the templates (CLIP's prompt ensembling)."""
    tokens, _ = class_prompts(templates)
    emb = F.normalize(model.encode_text(tokens), dim=-1).reshape(10, len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)  # (10, embed_dim)


@torch.no_grad()
def evaluate_two_tower(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict:
    """Zero-shot accuracy (prompts: the held-out templates of the ten classes) and image -> caption
    recall@1 (one held-out caption per image, drawn with ``seed``; a hit is a caption of the image's
    class) on held-out images."""
    was_training = model.training
    model.eval()
    image_emb = model.encode_image(images)
    texts = random_captions(labels, HELDOUT_TEMPLATES, torch.Generator().manual_seed(seed))
    text_emb = model.encode_text(tokenize(texts))
    result = {"zero_shot": zero_shot_accuracy(image_emb, _class_embeddings(model), labels),
              "recall_at_1": recall_at_1(image_emb, text_emb, labels, labels)}
    model.train(was_training)
    return result


def train_two_tower(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 300,
                    batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 0.05, seed: int = 0,
                    loss_fn: Callable | None = None, shift: int = 0) -> dict:
    """Contrastive training on (digit, random training caption) pairs; returns {"loss": [...], "seconds": s}.

    Each step draws ``batch_size`` images, one caption per image from ``TRAIN_TEMPLATES``, shifts the
    images by up to ``shift`` pixels, and minimises ``loss_fn(image_emb, text_emb, model.logit_scale)``
    (``clip_loss`` by default; with a ``logit_bias`` on the model it is passed as a fourth argument).
    AdamW with a cosine learning rate; no weight decay on the temperature and the bias.
    """
    from vitcourse.augment import random_shift

    loss_fn = loss_fn or clip_loss
    g = torch.Generator().manual_seed(seed)  # every draw: batches, captions, shifts
    scalars = [p for n, p in model.named_parameters() if n in ("logit_scale", "logit_bias")]
    others = [p for n, p in model.named_parameters() if n not in ("logit_scale", "logit_bias")]
    optimizer = torch.optim.AdamW([{"params": others, "weight_decay": weight_decay},
                                   {"params": scalars, "weight_decay": 0.0}], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    losses, start = [], time.perf_counter()
    for _ in range(env.steps(steps)):  # VITCOURSE_MAX_STEPS caps the run; the schedule stays the planned one
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        x = random_shift(images[idx], shift, g) if shift else images[idx]
        tokens = tokenize(random_captions(labels[idx], TRAIN_TEMPLATES, g))
        image_emb, text_emb = model(x, tokens)
        bias = getattr(model, "logit_bias", None)
        loss = loss_fn(image_emb, text_emb, model.logit_scale) if bias is None else \
            loss_fn(image_emb, text_emb, model.logit_scale, bias)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP caps the multiplier at 100
        losses.append(loss.detach())  # read once at the end: a read waits for a GPU
    losses = torch.stack(losses).reshape(len(losses)).tolist() if losses else []
    return {"loss": losses, "seconds": time.perf_counter() - start}
