"""Student submissions for the robustness suite, built from a chapter's source and release.

Every case is a notebook (or raw bytes) a student could plausibly hand in, with the outcome the
grader must produce. ``cases_for`` returns {student id: Case}.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from dataclasses import dataclass, field

MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)


@dataclass
class Case:
    content: bytes
    filename: str
    expect_score: float | None = None           # exact total, None: not checked
    expect_status: str = "graded"
    expect_zero_cells: set = field(default_factory=set)  # graded cells that must score 0
    expect_flag: str | None = None             # substring of a flag
    expect_timeout: bool = False
    expect_memory: bool = False
    expect_repaired: bool | None = None


def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answers(source: dict) -> dict[str, str]:
    """{grade id: the solution code as a student would write it (markers removed)}."""
    return {meta(c)["grade_id"]: MARKER.sub("", "".join(c["source"]))
            for c in source["cells"] if meta(c).get("solution") and not meta(c).get("grade")}


def points(release: dict) -> dict[str, float]:
    return {meta(c)["grade_id"]: float(meta(c)["points"]) for c in release["cells"] if meta(c).get("grade")}


def filled(release: dict, source: dict, which=None, replace: dict | None = None) -> dict:
    """The release with answers from the solution (``which``: only these ids), then ``replace``."""
    nb = copy.deepcopy(release)
    sol = answers(source)
    for c in nb["cells"]:
        gid = meta(c).get("grade_id")
        if gid in sol and (which is None or gid in which):
            c["source"] = sol[gid]
        if replace and gid in replace:
            c["source"] = replace[gid]
    return nb


def dump(nb: dict) -> bytes:
    return (json.dumps(nb, indent=1) + "\n").encode()


def find(nb: dict, gid: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if meta(c).get("grade_id") == gid)


def robustness_cases(name: str, source: dict, release: dict, bugs: dict, reference: tuple[str, str]) -> dict[str, "Case"]:
    """Generic cases for one chapter. ``bugs``: {label: ({function name: buggy fn}, {cells that fail})};
    ``reference``: (answer id, code importing the reference for it), e.g.
    ``("patchify", "from vitcourse.models.patches import patchify")``."""
    pts = points(release)
    total = sum(pts.values())
    sol = answers(source)
    answer_ids = list(sol)
    tests = [c for c in release["cells"] if meta(c).get("grade")]
    first_test = meta(tests[0])["grade_id"]
    second_test = meta(tests[1])["grade_id"]
    first_answer, second_answer = answer_ids[0], answer_ids[1]
    fn = f"{name}.ipynb"
    full = filled(release, source)
    cases: dict[str, Case] = {}
    cases["solution"] = Case(dump(full), fn, expect_score=total, expect_repaired=False)
    cases["release"] = Case(dump(release), fn, expect_score=0.0, expect_repaired=False)
    # partly solved: the first answer only; exactly the points of the test cells that pass then
    part = filled(release, source, which={first_answer})
    cases["partial"] = Case(dump(part), fn, expect_score=pts[first_test])

    for k, (label, (overrides, must_fail)) in enumerate(sorted(bugs.items())):
        if any(b.__qualname__ != b.__name__ for b in overrides.values()):
            continue  # made by a factory: no standalone source to paste into a cell
        replace = {}
        for fname, bug in overrides.items():
            gid = next(g for g, s in sol.items() if re.search(rf"^(def|class) {fname}\b", s, re.M))
            replace[gid] = replace.get(gid, sol[gid]) + "\n\n" + inspect.getsource(bug) + \
                f"\n{fname} = {bug.__name__}\n"
        cases[f"bug{k:02d}"] = Case(dump(filled(release, source, replace=replace)), fn,
                                    expect_zero_cells=set(must_fail))

    stripped = copy.deepcopy(full)
    for c in stripped["cells"]:
        c["metadata"] = {}
    cases["stripped"] = Case(dump(stripped), fn, expect_score=total, expect_repaired=True)

    edited = copy.deepcopy(full)
    edited["cells"][find(edited, second_test)]["source"] = "# I do not like this test\npass\n"
    del edited["cells"][find(edited, first_test)]
    cases["tests-edited"] = Case(dump(edited), fn, expect_score=total, expect_repaired=True)

    md = copy.deepcopy(full)
    cell = md["cells"][find(md, second_answer)]
    cell["cell_type"] = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    cases["to-markdown"] = Case(dump(md), fn, expect_score=total, expect_repaired=True)

    ins = copy.deepcopy(full)
    i = find(ins, first_answer)
    ins["cells"][i:i] = [
        {"cell_type": "markdown", "metadata": {}, "source": "My notes before the exercise."},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "MY_HELPER_CONSTANT = 3\nprint('a cell I added')"},
    ]
    ins["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                         "source": "print(MY_HELPER_CONSTANT)"})
    cases["inserted"] = Case(dump(ins), fn, expect_score=total, expect_repaired=True)

    cases["renamed"] = Case(dump(full), f"Copy of {name} (2).ipynb", expect_score=total)
    cases["corrupt"] = Case(dump(full)[: len(dump(full)) // 2], fn, expect_status="corrupt", expect_score=0.0)

    def with_prefix(code: str) -> dict:
        return filled(release, source, replace={first_answer: code + "\n" + sol[first_answer]})

    def appended(code: str) -> dict:
        nb = copy.deepcopy(full)
        nb["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                            "source": code})
        return nb

    cases["infinite-loop"] = Case(dump(appended("while True:\n    pass")), fn,
                                  expect_score=total, expect_timeout=True)
    # 8 GB of address space, never touched: the machine would grant it; the kernel's limit refuses
    cases["huge-alloc"] = Case(dump(appended("import torch\n_big = torch.empty(2_000_000_000)")), fn,
                               expect_score=total, expect_memory=True)
    cases["os-exit"] = Case(dump(with_prefix("import os\nos._exit(0)")), fn,
                            expect_status="crashed", expect_score=0.0)
    cases["big-print"] = Case(dump(with_prefix("print('x' * 50_000_000)")), fn, expect_score=total)
    noisy = sol[first_answer] + "\nimport sys, warnings\nwarnings.warn('this API is deprecated', " \
        "DeprecationWarning, stacklevel=1)\nsys.stderr.write('Warning: something noisy\\n')\n"
    cases["stderr-warning"] = Case(dump(filled(release, source, replace={first_answer: noisy})), fn,
                                   expect_score=total)
    cheat = "import torch\ntorch.allclose = lambda *args, **kwargs: True\n" + sol[first_answer]
    cases["monkeypatch"] = Case(dump(filled(release, source, replace={first_answer: cheat})), fn,
                                expect_flag="torch.allclose")
    ref = filled(release, source, replace={reference[0]: reference[1]})
    cases["reference"] = Case(dump(ref), fn, expect_flag="the reference")
    return cases
