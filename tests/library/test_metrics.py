"""vitcourse.metrics: what a notebook run reports to the benchmarks, only when they ask for it."""

import json

import pytest
import torch
from torch import nn

from vitcourse import data, metrics, train


def test_nothing_is_written_unless_asked(monkeypatch, tmp_path):
    monkeypatch.delenv(metrics.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    metrics.record("fit", loss=1.0)
    assert list(tmp_path.iterdir()) == []


def test_a_value_cannot_take_the_name_of_a_record_field(monkeypatch, tmp_path):
    monkeypatch.setenv(metrics.ENV, str(tmp_path / "m.jsonl"))
    with pytest.raises(ValueError, match="rename"):
        metrics.record("train_student", kind="hard")  # it would hide the record from its readers
    assert not (tmp_path / "m.jsonl").exists()


def test_fit_records_its_final_numbers(monkeypatch, tmp_path):
    path = tmp_path / "run.jsonl"
    monkeypatch.setenv(metrics.ENV, str(path))
    x, y = data.digits(8, "train").tensors
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    history = train.fit(model, train.RandomBatches(x, y, 32, 30, seed=0), progress=False)
    metrics.record("notebook", accuracy=torch.tensor(0.5), counts=(1, 2), name="digits")
    found = metrics.read(path)["metrics"]
    assert found[0] == {"source": "fit", "cell": None, "steps": 30, "planned_steps": 30, "loss": history.loss[-1],
                        "train_acc": history.train_acc[-1], "test_acc": None, "seconds": found[0]["seconds"],
                        "parameters": 650, "device": "cpu", "amp": None}
    assert found[1] == {"source": "notebook", "cell": None, "accuracy": 0.5, "counts": [1, 2], "name": "digits"}


class _Shell:
    """The part of an IPython shell that metrics.watch uses."""

    def __init__(self):
        self.execution_count = 1
        self.events = self

    callbacks = {"post_run_cell": []}

    def register(self, event, callback):
        self.callbacks[event].append(callback)

    def run_cell(self):
        for callback in self.callbacks["post_run_cell"]:
            callback(None)
        self.execution_count += 1


def test_watch_writes_usage_after_every_cell(monkeypatch, tmp_path):
    import IPython

    monkeypatch.setattr(metrics, "_cells_done", None)
    shell = _Shell()
    shell.callbacks["post_run_cell"] = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    path = tmp_path / "run.jsonl"
    monkeypatch.setenv(metrics.ENV, str(path))
    metrics.watch()
    metrics.watch()  # once is enough
    shell.run_cell()
    torch.zeros(20_000_000).add_(1)  # 80 MB more resident memory
    metrics.record("notebook", accuracy=0.5)
    shell.run_cell()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["kind"], line["cell"]) for line in lines] == [("usage", 0), ("metric", 1), ("usage", 1)]
    usage = metrics.read(path)["usage"]
    assert usage["device"] == "cpu" and usage["peak_gpu_memory_mb"] is None
    assert usage["peak_host_memory_mb"] >= lines[0]["peak_host_memory_mb"] > 10 and usage["cpu_seconds"] > 0


def test_usage_on_a_gpu_machine(monkeypatch):
    """A kernel that never touched its GPU is not made to (no CUDA context just to read a zero)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert metrics.usage()["device"] == "cuda (not used)" and metrics.usage()["peak_gpu_memory_mb"] == 0.0
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 3 * 2**30)
    assert metrics.usage()["device"] == "Tesla T4" and metrics.usage()["peak_gpu_memory_mb"] == 3 * 1024
