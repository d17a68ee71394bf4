"""The feedback page a student gets back: exercise names, a summary, failures at a glance, maths
typeset offline, nothing of the hidden tests.

The page is built by ``autograder.feedback`` (preprocessors and template); the fast tests run the
preprocessor on a made-up notebook and read every chapter's hidden blocks; the browser test grades
the toy course (a student with a plausible bug, one with the solution, whose hidden block is made to
end with a value) and looks at the pages in Debian's Chromium, offline, saving screenshots under
``artifacts/screenshots/``.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import shutil

import nbformat
import pytest

from autograder import cells, exercises
from autograder.feedback import PLACEHOLDER, FeedbackPage
from autograder.workspace import course_assignments, source_notebook

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course"
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "artifacts" / "screenshots"


def _graded(source: str, grade_id: str, points: float, score: float, outputs=(), solution=False, kind="code"):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if kind == "code":
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
    cell.metadata["nbgrader"] = {"grade": True, "solution": solution, "grade_id": grade_id, "points": points,
                                 "score": score, "comment": None, "waiting": kind != "code" and score == 0}
    return cell


def test_feedback_page_names_exercises_and_drops_hidden_output():
    hidden = "check(f)\n### BEGIN HIDDEN TESTS\ncheck_raises(lambda: f(3, 4))\n### END HIDDEN TESTS"
    error = {"output_type": "error", "ename": "AssertionError", "evalue": "f(2): got 1, expected 2\nHint: add one",
             "traceback": ["\x1b[31mTraceback\x1b[0m", "  check_raises(lambda: f(3, 4))  # hidden"]}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Chapter 0\n\n### Exercise 1 — `f` (5 points)"),
        _graded(hidden, "test_f", 3, 3, [{"output_type": "stream", "name": "stdout", "text": "f: visible check passed\n"},
                                         {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                                          "data": {"text/plain": "ValueError('a 3 x 4 grid')"}},
                                         {"output_type": "display_data", "metadata": {},
                                          "data": {"text/plain": "<Figure>"}}]),
        _graded(hidden, "test_f_more", 2, 0, [error]),
        nbformat.v4.new_markdown_cell("## 2. Why (2 points)\n\nExplain."),
        _graded("YOUR ANSWER HERE", "q_why", 2, 0, solution=True, kind="markdown"),
    ])
    nb, resources = FeedbackPage().preprocess(nb, {"nbgrader": {}})
    rows = {r["id"]: r for r in resources["vitcourse"]["rows"]}
    assert rows["test_f"]["title"] == "Exercise 1 — <code>f</code>, check 1 of 2" and rows["test_f"]["status"] == "passed"
    assert rows["test_f_more"]["status"] == "failed"
    assert rows["test_f_more"]["message"] == "AssertionError: f(2): got 1, expected 2\nHint: add one"
    assert rows["q_why"]["status"] == "waiting" and rows["q_why"]["written"] and rows["q_why"]["title"] == "2. Why"
    assert resources["vitcourse"]["waiting_points"] == 2 and resources["vitcourse"]["title"] == "Chapter 0"
    assert [o["output_type"] for o in nb.cells[1].outputs] == ["stream"]  # the hidden code's Out[...] is gone
    assert nb.cells[2].outputs[0]["traceback"] == []  # a traceback quotes the hidden code
    for cell in nb.cells[1:3]:
        assert "HIDDEN" not in cell.source.replace(PLACEHOLDER, "") and "check_raises" not in cell.source


def _hidden_blocks(nb: dict):
    for gid, cell in cells.tests(nb).items():
        text = cells.source(cell)
        if "### BEGIN HIDDEN TESTS" in text:
            yield gid, text.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]


@pytest.mark.parametrize("chapter", [*course_assignments(REPO), "toy"])
def test_no_hidden_block_ends_with_a_bare_expression(chapter):
    """A bare expression at the end of a graded cell is shown as ``Out[n]`` (a hidden case revealed) and
    nbgrader reads a number there as partial credit: end a hidden block with a statement."""
    nb = source_notebook(FIXTURE if chapter == "toy" else REPO, chapter)
    ending = {}
    for gid, block in _hidden_blocks(nb):
        tree = exercises.parse(block)
        assert tree is not None, f"{gid}: the hidden block does not parse"
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            ending[gid] = ast.unparse(tree.body[-1])[:80]
    assert not ending, "hidden blocks ending with a bare expression (assign its value: `_ = ...`): " + json.dumps(
        ending, indent=1)


# ------------------------------------------------------------------ in the browser
@pytest.fixture(scope="module")
def toy_feedback(tmp_path_factory):
    """Feedback pages of a graded toy class: ``bug`` (unstable softmax), ``sol`` (the solution). The
    course's hidden relu block is made to end with a value, as an ``Out[...]`` the page must not show."""
    from autograder.collect import collect
    from autograder.feedback import feedback
    from autograder.grade import grade
    from autograder.workspace import Workspace

    from grading_cases import Case, dump, filled, write_class

    tmp = tmp_path_factory.mktemp("feedback")
    course = tmp / "course"
    shutil.copytree(FIXTURE, course)
    path = course / "solutions" / "toy" / "toy.ipynb"
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        if cells.grade_id(c) == "test_relu":
            c["source"] = cells.source(c).replace("### END HIDDEN TESTS", "ValueError('hidden case 3 x 4')\n### END HIDDEN TESTS")
    path.write_text(json.dumps(nb))
    ws = Workspace.create(tmp / "ws", course)
    source, release = source_notebook(course, "toy"), json.loads(ws.release("toy").read_text())
    unstable = "def softmax(x, dim=-1):\n    e = x.exp()\n    return e / e.sum(dim=dim, keepdim=True)\n"
    students = {"sol": Case(dump(filled(release, source)), "toy.ipynb"),
                "bug": Case(dump(filled(release, source, replace={"softmax": unstable})), "toy.ipynb")}
    collect(ws, *write_class(tmp, students))
    grade(ws, "toy", jobs=2)
    feedback(ws, "toy")
    return {s: ws.root / "feedback" / s / "toy" / "toy.html" for s in students}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


SUMMARY = """() => [...document.querySelectorAll('#summary tr.vc-row')].map(r => ({
  id: r.dataset.gradeId, status: r.className.replace('vc-row vc-', ''), text: r.innerText}))"""


def _open(browser, path: pathlib.Path):
    problems = []
    tab = browser.new_page(viewport={"width": 1100, "height": 900})
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    tab.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
              else (problems.append(f"request leaves the file: {route.request.url}"), route.abort()))
    tab.goto(path.as_uri(), wait_until="load")
    tab.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30000)
    tab.evaluate("() => MathJax.startup.promise")
    return tab, problems


@pytest.mark.slow
@pytest.mark.browser
def test_feedback_page_in_chromium(toy_feedback, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab, problems = _open(browser, toy_feedback["bug"])
    rows = {r["id"]: r for r in tab.evaluate(SUMMARY)}
    assert list(rows) == ["test_relu", "test_softmax", "test_patchify", "q_shift"]
    assert rows["test_softmax"]["status"] == "failed" and "Exercise 2: softmax" in rows["test_softmax"]["text"]
    assert "0 / 3" in rows["test_softmax"]["text"] and "subtract the row maximum" in rows["test_softmax"]["text"]
    assert rows["test_relu"]["status"] == "passed" and "2 / 2" in rows["test_relu"]["text"]
    assert rows["q_shift"]["status"] == "waiting" and "(written)" in rows["q_shift"]["text"]
    assert "Test cell" not in tab.inner_text("body")
    # maths: typeset by the inlined MathJax, none left as TeX source
    assert tab.locator("mjx-container").count() >= 3 and tab.locator("mjx-merror").count() == 0
    assert "\\mathrm" not in tab.inner_text("body")
    # the failed check: a red box under its cell, whole message and hint visible, nothing cut off
    box = tab.locator("#test_softmax .vc-failure")
    box.scroll_into_view_if_needed()
    assert box.is_visible()
    text = box.inner_text()
    assert "This check failed" in text and "softmax of [1000, 1001]" in text and "Hint: subtract the row maximum" in text
    geometry = box.evaluate("e => {const p = e.querySelector('pre'); return {scroll: p.scrollWidth, client: p.clientWidth,"
                            " bg: getComputedStyle(e).backgroundColor}}")
    assert geometry["scroll"] <= geometry["client"] + 1, geometry  # wrapped, not cut at the right edge
    assert geometry["bg"] != "rgba(0, 0, 0, 0)", geometry
    tab.locator("#summary").screenshot(path=str(SHOTS / "feedback-summary.png"))
    tab.locator("#test_softmax").screenshot(path=str(SHOTS / "feedback-failed-check.png"))
    tab.locator("div.cell:has(mjx-container)").first.screenshot(path=str(SHOTS / "feedback-maths.png"))
    tab.screenshot(path=str(SHOTS / "feedback-page.png"), full_page=True)
    tab.close()
    assert not problems, problems

    # the solution: every check passed, and no output of the hidden tests
    tab, problems = _open(browser, toy_feedback["sol"])
    statuses = {r["id"]: r["status"] for r in tab.evaluate(SUMMARY)}
    assert statuses == {"test_relu": "passed", "test_softmax": "passed", "test_patchify": "passed", "q_shift": "waiting"}
    html = toy_feedback["sol"].read_text()
    assert "hidden case 3 x 4" not in html and "BEGIN HIDDEN TESTS" not in html and "Out[" not in tab.inner_text("#test_relu")
    assert "demonstration ran:" not in html and "the grader does not run it" in html  # the demonstration cell
    assert not re.search(r"<(script|link)[^>]+(src|href)=", html), "the page loads a file: it must be self-contained"
    tab.close()
    assert not problems, problems
