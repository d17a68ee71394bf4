"""A grading workspace: a folder outside the repository, wired to the course's sources.

Layout of ``DIR`` after ``python -m autograder init DIR``::

    workspace.json        settings: course folder (holds solutions/), gradebook URL, limits
    nbgrader_config.py    nbgrader settings (so plain ``nbgrader`` commands also work in DIR)
    source -> COURSE/solutions   (symlink; nbgrader reads the sources from here)
    originals/STUDENT/ASSIGNMENT/FILE   collected files, byte copies, never written again
    manifest.json         where each original came from and its sha256
    release/              fresh nbgrader release, the reference for repair
    submitted/            repaired notebooks (what nbgrader grades)
    autograded/ feedback/ reports/ exports/
    gradebook.db          default gradebook (SQLite)
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
from dataclasses import asdict, dataclass

from autograder import settings

REPO = pathlib.Path(settings.REPO_ROOT)
KERNEL_MEMORY_MB = 6000  # torch (CUDA build) maps ~3 GB of address space at import


@dataclass
class Workspace:
    root: pathlib.Path
    course: str
    db_url: str
    cell_timeout_s: int = settings.CELL_TIMEOUT_S
    kernel_memory_mb: int = KERNEL_MEMORY_MB

    # ---------------------------------------------------------------- creation and loading
    @classmethod
    def create(cls, root: str | os.PathLike, course: str | os.PathLike = REPO, db_url: str | None = None,
               cell_timeout_s: int = settings.CELL_TIMEOUT_S,
               kernel_memory_mb: int = KERNEL_MEMORY_MB) -> "Workspace":
        root = pathlib.Path(root).resolve()
        course = pathlib.Path(course).resolve()
        if root == REPO or REPO in root.parents:
            raise SystemExit(f"{root} is inside the repository; put the grading workspace elsewhere "
                             "(student work must never end up in a commit)")
        if not (course / "solutions").is_dir():
            raise SystemExit(f"{course} has no solutions/ folder; --course must be the course repository")
        root.mkdir(parents=True, exist_ok=True)
        ws = cls(root, str(course), db_url or f"sqlite:///{root / 'gradebook.db'}",
                 cell_timeout_s, kernel_memory_mb)
        ws.save()
        link = root / "source"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(course / "solutions", target_is_directory=True)
        for sub in ["originals", "release", "submitted", "autograded", "feedback", "reports", "exports"]:
            (root / sub).mkdir(exist_ok=True)
        if not ws.manifest_path.exists():
            ws.manifest_path.write_text("{}\n")
        ws.write_nbgrader_config(root, ws.db_url)
        ws.write_kernelspec()
        return ws

    @classmethod
    def load(cls, root: str | os.PathLike) -> "Workspace":
        root = pathlib.Path(root).resolve()
        path = root / "workspace.json"
        if not path.exists():
            raise SystemExit(f"{root} is not a grading workspace (no workspace.json); run "
                             f"`python -m autograder init {root}` first")
        data = json.loads(path.read_text())
        data.pop("root", None)
        return cls(root=root, **data)

    def save(self) -> None:
        data = asdict(self)
        data.pop("root")
        (self.root / "workspace.json").write_text(json.dumps(data, indent=1) + "\n")

    # ---------------------------------------------------------------- paths
    @property
    def manifest_path(self) -> pathlib.Path:
        return self.root / "manifest.json"

    def assignments(self) -> list[str]:
        src = pathlib.Path(self.course) / "solutions"
        return sorted(d.name for d in src.iterdir() if (d / f"{d.name}.ipynb").is_file())

    def manifest(self) -> dict:
        """{"STUDENT/ASSIGNMENT": {"file": relative path under originals/, "sha256", "source"}}"""
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: dict) -> None:
        self.manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    def students(self) -> list[str]:
        """Every student id seen on a roster given to ``collect``."""
        path = self.root / "students.json"
        return json.loads(path.read_text()) if path.exists() else []

    def add_students(self, ids: list[str]) -> None:
        (self.root / "students.json").write_text(json.dumps(sorted(set(self.students()) | set(ids)),
                                                            indent=1) + "\n")

    def verify_originals(self) -> list[str]:
        """Problems with the collected originals: every file must still hash as collected."""
        problems = []
        for key, entry in self.manifest().items():
            path = self.root / "originals" / entry["file"]
            if not path.exists():
                problems.append(f"{key}: original {path} is missing")
            elif sha256(path) != entry["sha256"]:
                problems.append(f"{key}: original {path} was modified")
        return problems

    # ---------------------------------------------------------------- nbgrader plumbing
    def write_nbgrader_config(self, folder: pathlib.Path, db_url: str) -> None:
        (folder / "nbgrader_config.py").write_text(
            "# Written by `python -m autograder`; settings come from autograder/settings.py.\n"
            "from autograder import settings\n"
            "c = get_config()\n"
            "settings.apply(c)\n"
            f"c.CourseDirectory.root = {str(folder)!r}\n"
            f"c.CourseDirectory.course_id = {settings.COURSE_ID!r}\n"
            f"c.CourseDirectory.source_directory = {str(self.root / 'source')!r}\n"
            f"c.CourseDirectory.release_directory = 'release'\n"
            f"c.CourseDirectory.db_url = {db_url!r}\n"
            f"c.Execute.timeout = {self.cell_timeout_s}\n"
            f"c.ExecutePreprocessor.timeout = {self.cell_timeout_s}\n"
            "c.OverwriteCells.add_missing_cells = True\n"
            "c.GenerateFeedback.preprocessors = [\n"
            "    'nbgrader.preprocessors.GetGrades', 'autograder.feedback.HideHiddenTests',\n"
            "    'nbconvert.preprocessors.CSSHTMLHeaderPreprocessor']\n"
        )

    @property
    def jupyter_path(self) -> pathlib.Path:
        return self.root / ".jupyter"

    def write_kernelspec(self) -> None:
        """Override the ``python3`` kernel inside nbgrader runs: same Python, with a memory limit."""
        spec = self.jupyter_path / "kernels" / "python3"
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "autograder.kernel", "-f", "{connection_file}"],
            "display_name": "Python 3 (graded, memory-limited)",
            "language": "python",
            "env": {"VITCOURSE_KERNEL_MEMORY_MB": str(self.kernel_memory_mb)},
        }, indent=1))

    def env(self) -> dict:
        env = settings.tool_env(JUPYTER_PATH=str(self.jupyter_path), OMP_NUM_THREADS="1",
                                MKL_NUM_THREADS="1", MPLBACKEND="Agg")
        src = str(pathlib.Path(self.course) / "src")
        env["PYTHONPATH"] = os.pathsep.join([settings.REPO_ROOT, src, env.get("PYTHONPATH", "")])
        return env

    def nbgrader(self, args: list[str], cwd: pathlib.Path | None = None,
                 log: pathlib.Path | None = None) -> subprocess.CompletedProcess:
        """Run ``nbgrader ARGS`` in ``cwd`` (default: the workspace), output kept in ``log``."""
        cmd = [sys.executable, "-m", "nbgrader", *args]
        done = subprocess.run(cmd, cwd=cwd or self.root, env=self.env(), capture_output=True, text=True)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"$ {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
        return done

    def release(self, assignment: str) -> pathlib.Path:
        """Generate ``release/ASSIGNMENT`` from the source and register it in the gradebook."""
        done = self.nbgrader(["generate_assignment", assignment, "--force", "--log-level=WARN"],
                             log=self.root / "reports" / assignment / "generate_assignment.log")
        if done.returncode:
            raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{done.stderr[-3000:]}")
        return self.root / "release" / assignment / f"{assignment}.ipynb"


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
