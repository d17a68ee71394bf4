"""The flags: each pattern of letting the reference do the work, and correct code left alone.

Small notebooks written here stand for the exercise designs (a function, a class that inherits from
a reference class as chapter 6's ``MyMAE``, a function handed a reference module as chapter 7's
``swin_block_forward``); the last tests run over every chapter of the course.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from autograder import flags
from autograder.exercises import exercises
from autograder.workspace import course_assignments

from grading_cases import filled, loophole_answers

REPO = pathlib.Path(__file__).resolve().parents[2]
SETUP = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\nfrom vitcourse import checks\n" \
        "from vitcourse.models import mae as ref\nfrom vitcourse.models import swin as sref"
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"
METHOD_STUB = STUB.replace("    ", "        ")


def notebook(*code: tuple[str, str]) -> dict:
    """Cells ``(kind, source)``: kind "answer:ID", "test:ID" or "context"."""
    out = []
    for kind, text in code:
        meta = {}
        if kind.startswith("answer:"):
            meta = {"nbgrader": {"grade": False, "solution": True, "grade_id": kind[7:], "locked": False}}
        elif kind.startswith("test:"):
            meta = {"nbgrader": {"grade": True, "solution": False, "grade_id": kind[5:], "points": 1, "locked": True}}
        out.append({"cell_type": "code", "metadata": meta, "source": text, "outputs": [], "execution_count": None})
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


RELEASE = notebook(
    ("context", SETUP),
    ("answer:masking", f"def random_masking(tokens, mask_ratio, generator=None):\n{STUB}"),
    ("test:test_masking", "random_masking(torch.randn(2, 4, 3), 0.5)"),
    ("answer:mae_model", "class MyMAE(ref.MAE):\n    def forward_encoder(self, images, mask_ratio):\n"
                         f"{METHOD_STUB}\n\n    def forward_decoder(self, latent, ids_restore):\n{METHOD_STUB}"),
    ("test:test_mae", "mine = MyMAE()\nmine.forward_encoder(torch.rand(1, 1, 8, 8), 0.75)"),
    ("answer:block", f"def swin_block_forward(block, x):\n{STUB}"),
    ("test:test_block", "block = sref.SwinBlock(16, 2, window_size=4).eval()\nx = torch.randn(2, 8, 8, 16)\n"
                        "swin_block_forward(block, x)"),
    ("answer:merging", "class PatchMerging(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n"
                       "        self.norm = nn.LayerNorm(4 * dim)\n\n"
                       f"    def forward(self, x):\n{METHOD_STUB}"),
)

GOOD = {
    "masking": "def random_masking(tokens, mask_ratio, generator=None):\n"
               "    B, N, D = tokens.shape\n    keep = int(N * (1 - mask_ratio))\n"
               "    ids = torch.rand(B, N, generator=generator).argsort(1)\n"
               "    return tokens.gather(1, ids[:, :keep, None].expand(-1, -1, D)), ids, ids.argsort(1)",
    "mae_model": "class MyMAE(ref.MAE):\n    def __init__(self, **kw):\n        super().__init__(**kw)\n\n"
                 "    def forward_encoder(self, images, mask_ratio):\n"
                 "        x, mask, ids = random_masking(self.patch_embed(images), mask_ratio)\n"
                 "        for blk in self.blocks:\n            x = blk(x)\n        return self.norm(x), mask, ids\n\n"
                 "    def forward_decoder(self, latent, ids_restore):\n"
                 "        return self.decoder_pred(F.gelu(self.decoder_embed(latent)))",
    "block": "def swin_block_forward(block, x):\n    y = block.attn(block.norm1(x))\n"
             "    x = x + y\n    return x + block.mlp(block.norm2(x))",
    "merging": "class PatchMerging(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n"
               "        self.norm = nn.LayerNorm(4 * dim)\n        self.reduction = nn.Linear(4 * dim, 2 * dim)\n\n"
               "    def forward(self, x):\n        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2]], -1)\n"
               "        return self.reduction(self.norm(x))",
}


def flags_for(**answers: str) -> list[str]:
    student = filled(RELEASE, RELEASE, replace={**GOOD, **answers})
    return flags.flag_notebook(student, RELEASE)


def test_exercises_of_a_release():
    ex = exercises(RELEASE)
    assert ex.names == {"random_masking", "MyMAE", "swin_block_forward", "PatchMerging"}
    assert ex.methods == {"MyMAE": {"forward_encoder", "forward_decoder"}, "PatchMerging": {"forward"}}
    assert ex.handed == {"swin_block_forward": {0}}


def test_correct_work_is_not_flagged():
    """Subclassing the handed-in base, super().__init__, the block's parts, nn and F, earlier exercises."""
    assert flags_for() == []


@pytest.mark.parametrize("gid, code, expected", [
    # super() into the reference class, or the reference's method left in place
    ("mae_model", "class MyMAE(ref.MAE):\n    def forward_encoder(self, images, mask_ratio):\n"
                  "        return super().forward_encoder(images, mask_ratio)\n"
                  "    def forward_decoder(self, latent, ids):\n        return super().forward_decoder(latent, ids)",
     "MyMAE calls super().forward_encoder"),
    ("mae_model", "class MyMAE(ref.MAE):\n    def forward_encoder(self, images, mask_ratio):\n"
                  "        return super(MyMAE, self).forward_encoder(images, mask_ratio)\n"
                  "    def forward_decoder(self, latent, ids):\n        return latent",
     "MyMAE calls super().forward_encoder"),
    ("mae_model", "class MyMAE(ref.MAE):\n    def forward_decoder(self, latent, ids):\n        return latent",
     "MyMAE does not define forward_encoder"),
    ("mae_model", "class MyMAE(ref.MAE):\n    def forward_encoder(self, images, mask_ratio):\n"
                  "        return ref.MAE.forward_encoder(self, images, mask_ratio)\n"
                  "    def forward_decoder(self, latent, ids):\n        return latent",
     "vitcourse.models.mae.MAE.forward_encoder (the reference)"),
    ("mae_model", "import vitcourse.models.mae as M\nMyMAE = M.MAE", "binds MyMAE to vitcourse.models.mae.MAE"),
    # the handed-in reference module run whole
    ("block", "def swin_block_forward(block, x):\n    return block(x)", "calls the reference object it is handed"),
    ("block", "def swin_block_forward(block, x):\n    return block.forward(x)", "runs block.forward"),
    ("block", "def swin_block_forward(block, x):\n    b = block\n    return b(x)", "calls the reference object"),
    ("block", "def swin_block_forward(block, x):\n    return type(block).forward(block, x)", "type(block).forward"),
    ("block", "def swin_block_forward(block, x):\n    return nn.Module.__call__(block, x)", "nn.Module.__call__"),
    ("block", "def swin_block_forward(block, x):\n    return sref.SwinBlock.forward(block, x)",
     "vitcourse.models.swin.SwinBlock.forward (the reference)"),
    # the reference function reached through an alias
    ("masking", "from vitcourse.models.mae import random_masking", "imports random_masking from vitcourse.models.mae"),
    ("masking", "import vitcourse.models.mae as P\ndef random_masking(t, r, generator=None):\n"
                "    return P.random_masking(t, r, generator)", "vitcourse.models.mae.random_masking (the reference)"),
    ("masking", "from vitcourse.models import mae as pp\nrandom_masking = pp.random_masking", "the reference"),
    ("masking", "def random_masking(t, r, generator=None):\n    return getattr(ref, 'random_masking')(t, r)",
     "vitcourse.models.mae.random_masking (the reference)"),
    ("masking", "import importlib\ndef random_masking(t, r, generator=None):\n"
                "    m = importlib.import_module('vitcourse.models.mae')\n    return m.random_masking(t, r)",
     "the reference"),
    ("masking", "import vitcourse\ndef random_masking(t, r, generator=None):\n"
                "    return vitcourse.models.mae.random_masking(t, r)", "the reference"),
    ("masking", "def random_masking(t, r, generator=None):\n    return vars(ref)['random_masking'](t, r)",
     "the reference"),
    ("masking", "def random_masking(t, r, generator=None, name='random_masking'):\n    return getattr(ref, name)(t, r)",
     "the reference"),
    ("masking", "from vitcourse.models.mae import *", "imports everything from vitcourse.models.mae"),
    # tampering with the checks
    ("merging", GOOD["merging"] + "\ntorch.allclose = lambda *a, **k: True", "monkeypatch: assigns to torch.allclose"),
    ("merging", GOOD["merging"] + "\nimport torch as T\nT.testing.assert_close = print", "T.testing.assert_close"),
    ("merging", GOOD["merging"] + "\nchecks.check_close = lambda *a, **k: None", "checks.check_close"),
    ("merging", GOOD["merging"] + "\nsetattr(checks, 'check_close', print)", "monkeypatch: setattr"),
    ("merging", GOOD["merging"] + "\nimport builtins\nbuiltins.print = None", "builtins.print"),
])
def test_pattern_is_flagged(gid, code, expected):
    got = flags_for(**{gid: code})
    assert any(expected in f for f in got), got
    assert all(f.startswith(f"{gid}: ") for f in got), got


def test_a_cell_the_student_added_is_scanned():
    student = filled(RELEASE, RELEASE, replace=GOOD)
    student["cells"].append({"cell_type": "code", "metadata": {}, "source": "from vitcourse.models.mae import "
                             "random_masking as rm", "outputs": [], "execution_count": None})
    assert flags.flag_notebook(student, RELEASE) == [
        "added cell 1: imports random_masking from vitcourse.models.mae (the reference)"]


@pytest.mark.parametrize("gid, code", [
    ("masking", "from vitcourse.models.patches import unpatchify\n" + GOOD["masking"]),  # not this exercise
    ("masking", GOOD["masking"].replace("tokens.gather", "torch.nn.functional.normalize(tokens, dim=-1).gather")),
    ("block", "def swin_block_forward(block, x):\n    fn = block.attn.forward\n    return x + fn(block.norm1(x))"),
    ("block", "def swin_block_forward(block, x):\n    x.data = x.data\n    torch.manual_seed(0)\n    return x"),
    ("merging", GOOD["merging"] + "\n_cache = {}\n_cache['x'] = 1\nself_test = nn.Linear(2, 2)"),
    ("mae_model", GOOD["mae_model"] + "\n\n    def extra(self):\n        return super().forward(None)"),
])
def test_other_correct_code_is_not_flagged(gid, code):
    assert flags_for(**{gid: code}) == []


def test_magics_and_syntax_errors_do_not_hide_the_rest():
    got = flags_for(masking="%time x = 1\nfrom vitcourse.models.mae import random_masking")
    assert got and "the reference" in got[0]
    assert flags_for(masking="def random_masking(:\n    pass") == []


# ------------------------------------------------------------------ every chapter of the course
CHAPTERS = course_assignments(REPO)


def chapter(name: str) -> tuple[dict, dict]:
    source = json.loads((REPO / "solutions" / name / f"{name}.ipynb").read_text())
    return source, json.loads((REPO / "notebooks" / name / f"{name}.ipynb").read_text())


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_solution_and_release_are_not_flagged(name):
    source, release = chapter(name)
    assert flags.flag_notebook(filled(release, source), release) == []
    assert flags.flag_notebook(release, release) == []
    assert flags.flag_notebook(source, source) == []


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_loopholes_are_flagged(name):
    """Every answer that inherits from a reference class or is handed a reference object, rewritten
    to let the reference do the work, is flagged (chapters 6 and 7 have such answers today)."""
    source, release = chapter(name)
    for gid, (code, expected) in loophole_answers(release).items():
        got = flags.flag_notebook(filled(release, source, replace={gid: code}), release)
        assert any(expected in f for f in got), (gid, code, got)



def _reference_homes(name: str, chapter_module: str) -> list[str]:
    """The reference modules (the chapter's model module, augment, flops) that define ``name``."""
    import importlib

    homes = [chapter_module, "vitcourse.augment", "vitcourse.flops"]
    return [m for m in homes if hasattr(importlib.import_module(m), name)]


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_answers_imported_from_the_library_are_flagged(name):
    """An answer replaced by an import of the library's own version is flagged, wherever in the library
    the reference lives (vitcourse.models, and also vitcourse.augment's MultiCrop and vitcourse.flops'
    vit_macs)."""
    from authoring import registry
    from autograder import cells

    source, release = chapter(name)
    module = registry.chapter(name).module
    tried = 0
    for c in release["cells"]:
        gid = cells.grade_id(c)
        if cells.kind(c) != "solution" or c.get("cell_type") != "code":
            continue
        defined = [line.split()[1].split("(")[0].rstrip(":") for line in cells.source(c).splitlines()
                   if line.startswith(("def ", "class "))]
        for obj in defined:
            for home in _reference_homes(obj, module):
                got = flags.flag_notebook(filled(release, source, replace={gid: f"from {home} import {obj}"}), release)
                assert any(f"imports {obj} from {home}" in f for f in got), (gid, home, got)
                tried += 1
    assert tried, f"{name}: no answer has a library version to import"
