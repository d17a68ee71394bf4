"""The GPU memory estimate that ``python3.11 tasks.py gpu`` prints first (benchmarks/gpu_memory.py).

It counts on the meta device what each chapter puts on the GPU in its `full` budget: parameters, AdamW's
moments, and the step's peak of live tensors. Checked here: the counting itself on a layer whose memory
is known by hand, every chapter under a Colab T4's 15 GB, and a workload for every notebook that uses the
GPU. (tests/test_full_budget.py checks that the training workloads are the models the notebooks train.)
"""

import pathlib
import re

import torch
from torch import nn

from authoring import registry
from benchmarks import gpu_memory

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_a_linear_layer_is_counted_as_by_hand():
    layer = gpu_memory.Workload("linear", lambda: (nn.Linear(1000, 1000), (torch.empty(100, 1000),)), training=True)
    e = gpu_memory.estimate(layer)
    weights = (1000 * 1000 + 1000) * 4
    assert e.parameters == weights and e.optimizer == 2 * weights
    # the step's peak: the input batch and the gradients of weight and bias (the output is freed by then)
    assert 100 * 1000 * 4 + weights <= e.activations <= 2 * 100 * 1000 * 4 + weights, e
    forward = gpu_memory.estimate(gpu_memory.Workload("linear", layer.build, training=False))
    assert forward.optimizer == 0 and forward.activations == 2 * 100 * 1000 * 4  # input and output


def test_every_chapter_fits_a_colab_t4():
    estimates = gpu_memory.chapter_estimates()
    assert list(estimates) == [c.id for c in registry.chapters()]
    for chapter, found in estimates.items():
        assert gpu_memory.peak(found) < 0.9 * gpu_memory.COLAB_T4_GB * 2**30, (chapter, found)
    text = gpu_memory.table(estimates)
    assert "15 GB" in text and "DOES NOT FIT" not in text


def test_every_notebook_that_uses_the_gpu_has_its_workloads():
    """A notebook that places anything on ``DEVICE`` (beyond its set-up line) has an entry in WORKLOADS."""
    for chapter in registry.chapters():
        uses = len(re.findall(r"\bDEVICE\b", (REPO / chapter.source).read_text())) > 1
        assert uses == (chapter.id in gpu_memory.WORKLOADS), chapter.id
