"""The book is published by .github/workflows/book.yml: a valid GitHub Actions workflow that runs the
README's book command on the registry's branch and deploys _build/html to GitHub Pages."""

import pathlib
import re
import shutil
import subprocess
import sys

import yaml

from authoring import derived, registry

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKFLOW = derived.WORKFLOW


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _check_jsonschema() -> str:
    found = shutil.which("check-jsonschema", path=str(pathlib.Path(sys.executable).parent))
    assert found, "check-jsonschema is missing from the environment (pyproject's dev extra)"
    return found


def test_workflow_is_valid_for_github_actions():
    """check-jsonschema's vendored schema of GitHub workflows: no network needed."""
    done = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_linter_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "book.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    done = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(broken)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0


def test_workflow_publishes_from_the_registry_branch():
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = _workflow()[True]
    assert triggers["push"]["branches"] == [registry.info().branch]


def test_workflow_builds_with_the_readme_command_and_deploys_the_html():
    readme_command = re.search(r"^(python3\.11 tasks\.py book)\b", (REPO / "README.md").read_text(), re.M)[1]
    steps = [s for job in _workflow()["jobs"].values() for s in job["steps"]]
    assert any(s.get("run", "").strip() == readme_command for s in steps)
    uses = {s.get("uses", "").split("@")[0]: s for s in steps}
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    assert "actions/deploy-pages" in uses
    permissions = _workflow()["permissions"]
    assert permissions["pages"] == "write" and permissions["id-token"] == "write"
