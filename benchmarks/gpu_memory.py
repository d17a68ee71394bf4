"""How much GPU memory each chapter needs in its `full` budget, estimated without a GPU.

    .venv/bin/python -m benchmarks.gpu_memory     # the table that `python3.11 tasks.py gpu` prints first

For each chapter, the heaviest things its solution notebook puts on the GPU in the `full` budget
(``WORKLOADS``, each naming the notebook cell it copies) are built on PyTorch's ``meta`` device, which
records shapes and allocates nothing, and run once: forward and backward for a training step,
forward for inference. The estimate adds:

- parameters and buffers (float32);
- for training, AdamW's state: two moments per trainable parameter (2 x 4 bytes);
- the step's peak: the most bytes held at once by the tensors the step creates, counted as they are
  created and freed: the inputs, the activations autograd keeps for the backward pass, and the
  gradients the backward pass writes.

Everything is counted in float32: mixed precision on a GPU keeps most activations in float16, so the
estimate is an upper bound, and it leaves out the CUDA context (a few hundred MB that PyTorch's
allocator never sees) and allocator fragmentation. Chapters whose notebooks keep everything on the CPU
(``DEVICE`` unused) need no GPU memory. The reference is the GPU Colab gives for free, a T4 with 15 GB.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from authoring import registry

COLAB_T4_GB = 15.0
MB = 2**20


@dataclass(frozen=True)
class Workload:
    """One thing a notebook runs on the GPU: ``build()`` returns (model, inputs) and is called on the meta
    device; ``training`` adds the backward pass and AdamW's state; ``frozen`` are further modules that
    only run forward inside the step (a teacher)."""

    what: str
    build: Callable[[], tuple[nn.Module, tuple]]
    training: bool
    frozen: Callable[[], list[nn.Module]] = lambda: []


@dataclass(frozen=True)
class Estimate:
    workload: str
    parameters: int  # bytes, every module's parameters and buffers
    optimizer: int  # bytes, AdamW's two moments
    activations: int  # bytes, the step's peak: inputs, activations, gradients

    @property
    def total(self) -> int:
        return self.parameters + self.optimizer + self.activations


def _vit(**options) -> nn.Module:
    from vitcourse.models.vit import ViT

    return ViT(**options)


def _digits_vit(**overrides) -> nn.Module:
    from vitcourse.models.vit import DIGITS_VIT

    return _vit(**(DIGITS_VIT | overrides))


def _dino_student() -> tuple[nn.Module, tuple]:
    from vitcourse.models.dino import DINOHead, MultiCropWrapper

    backbone = _digits_vit(num_classes=0, mlp_ratio=2.0)
    student = MultiCropWrapper(backbone, DINOHead(64, 256, 256, 64, use_bn=True))
    views = [torch.empty(64, 1, 16, 16)] * 2 + [torch.empty(64, 1, 8, 8)] * 4  # MultiCrop.tiny(): 2 + 4 views
    return student, (views,)


def _teacher_cnn() -> list[nn.Module]:
    from vitcourse.models.deit import SmallCNN

    return [SmallCNN()]


def _mae(**options) -> nn.Module:
    from vitcourse.models.mae import MAE

    return MAE(**options)


# What each chapter's solution notebook puts on the GPU in the `full` budget (``DEVICE``), heaviest first.
WORKLOADS: dict[str, list[Workload]] = {
    "03-vit": [
        Workload("ViT 192 wide, 8 blocks, on CIFAR-10 (32 px, batch 256), training",  # cell "if BUDGET == 'full'"
                 lambda: (_vit(img_size=32, patch_size=4, in_chans=3, num_classes=10, embed_dim=192, depth=8,
                               num_heads=6), (torch.empty(256, 3, 32, 32),)), training=True),
        Workload("DINO ViT-S/16 attention maps (224 px, batch 1)",
                 lambda: (_vit(embed_dim=384, depth=12, num_heads=6, num_classes=0), (torch.empty(1, 3, 224, 224),)),
                 training=False),
    ],
    "04-deit": [
        Workload("DistilledViT 64 wide, 4 blocks (batch 128) with a SmallCNN teacher, training",
                 lambda: (_digits_vit(distilled=True), (torch.empty(128, 1, 16, 16),)), training=True,
                 frozen=_teacher_cnn),
    ],
    "05-dino": [
        Workload("DINO on the digits: student and EMA teacher, 2 + 4 views of 64 images, training",
                 _dino_student, training=True, frozen=lambda: [_dino_student()[0]]),
        Workload("DINO ViT-S/16 attention maps (224 px, batch 1)",
                 lambda: (_vit(embed_dim=384, depth=12, num_heads=6, num_classes=0), (torch.empty(1, 3, 224, 224),)),
                 training=False),
    ],
    "06-mae": [
        Workload("MAE ViT-S encoder, 12 blocks (224 px, batch 8, nothing masked), forward",
                 lambda: (_mae(img_size=224, patch_size=16, in_chans=3, embed_dim=384, depth=12, num_heads=6,
                               decoder_embed_dim=128, decoder_depth=1), (torch.empty(8, 3, 224, 224), 0.0)),
                 training=False),
        Workload("MAE on the digits, 2 encoder blocks (batch 64), training",
                 lambda: (_mae(depth=2), (torch.empty(64, 1, 16, 16), 0.75)), training=True),
    ],
    "08-registers": [
        Workload("DINOv2 ViT-L/14 with 4 registers (518 px, batch 1), forward",
                 lambda: (_vit(img_size=518, patch_size=14, embed_dim=1024, depth=24, num_heads=16, num_classes=0,
                               num_registers=4, no_embed_class=True, init_values=1e-5),
                          (torch.empty(1, 3, 518, 518),)), training=False),
        Workload("ViT 64 wide, 4 blocks, 4 registers, on 24 px canvases (batch 64), training",
                 lambda: (_vit(img_size=24, patch_size=4, in_chans=1, num_classes=2, embed_dim=64, depth=4,
                               num_heads=4, num_registers=4, no_embed_class=True, init_values=1e-5),
                          (torch.empty(64, 1, 24, 24),)), training=True),
    ],
}


class _LiveBytes(TorchDispatchMode):
    """The bytes held by the tensors created under this mode, now and at their peak. A storage counts
    from its first tensor until its last Python tensor is gone; ``skip`` are storages counted elsewhere
    (parameters)."""

    def __init__(self, skip: set[int]):
        super().__init__()
        self.skip, self.holders, self.now, self.peak = skip, {}, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self.hold(tensor)
        return out

    def hold(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self.skip:
            return
        if key not in self.holders:
            self.holders[key] = [storage.nbytes(), 0]
            self.now += storage.nbytes()
            self.peak = max(self.peak, self.now)
        self.holders[key][1] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.holders[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.holders[key]


def _bytes(modules: list[nn.Module]) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in [*m.parameters(), *m.buffers()])


def trainable_parameters(workload: Workload) -> int:
    """How many numbers the workload's model trains (what ``vitcourse.train.fit`` records as ``parameters``)."""
    with torch.device("meta"):
        model, _ = workload.build()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def estimate(workload: Workload) -> Estimate:
    """Run ``workload`` once on the meta device and count its memory (see the module docstring)."""
    with torch.device("meta"):
        model, inputs = workload.build()
        frozen = workload.frozen()
    model.train(workload.training)
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    owned = {t.untyped_storage()._cdata for m in [model, *frozen] for t in [*m.parameters(), *m.buffers()]}
    live = _LiveBytes(owned)
    for tensor in pytree.tree_leaves(inputs):
        if isinstance(tensor, torch.Tensor):
            live.hold(tensor)
    del tensor
    with torch.set_grad_enabled(workload.training), live:
        # autograd keeps what backward needs; holding those tensors in Python lets the count see them
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
            out = model(*inputs)
        if workload.training:
            loss = sum(t.float().sum() for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point())
            del out
            loss.backward()
            del loss
    return Estimate(workload.what, _bytes([model, *frozen]), 2 * trainable if workload.training else 0, live.peak)


def chapter_estimates() -> dict[str, list[Estimate]]:
    """Chapter id -> the estimates of its workloads (an empty list: nothing on the GPU)."""
    return {c.id: [estimate(w) for w in WORKLOADS.get(c.id, [])] for c in registry.chapters()}


def peak(estimates: list[Estimate]) -> int:
    """A chapter's need: its largest workload (the notebooks free one before the next)."""
    return max((e.total for e in estimates), default=0)


def table(estimates: dict[str, list[Estimate]], device_gb: float = COLAB_T4_GB, device: str = "a Colab T4") -> str:
    """The estimates as text, each chapter's largest workload against ``device_gb``."""
    lines = [f"GPU memory per chapter, full budget (estimate: float32, an upper bound), against {device}'s "
             f"{device_gb:.0f} GB:",
             f"{'chapter':<14}{'parameters':>11}{'AdamW':>9}{'step peak':>11}{'total':>9}{'of ' + f'{device_gb:.0f} GB':>9}"
             "  largest workload"]
    for chapter, found in estimates.items():
        if not found:
            lines.append(f"{chapter:<14}{'-':>11}{'-':>9}{'-':>11}{'0 MB':>9}{'0%':>9}  nothing on the GPU")
            continue
        e = max(found, key=lambda e: e.total)
        share = e.total / (device_gb * 2**30)
        verdict = "" if share < 0.9 else "  DOES NOT FIT" if share > 1 else "  tight"
        lines.append(f"{chapter:<14}{e.parameters / MB:>8.0f} MB{e.optimizer / MB:>6.0f} MB{e.activations / MB:>8.0f} MB"
                     f"{e.total / MB:>6.0f} MB{share:>8.0%}  {e.workload}{verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(chapter_estimates()))
