"""A grading workspace: a folder outside the repository, wired to the course's sources.

Layout of ``DIR`` after ``python -m autograder init DIR``::

    workspace.json        settings: course folder (holds solutions/), gradebook URL, limits
    nbgrader_config.py    nbgrader settings (so plain ``nbgrader`` commands also work in DIR)
    source/ASSIGNMENT -> COURSE/solutions/ASSIGNMENT   (symlinks; nbgrader reads the sources here)
    originals/STUDENT/ASSIGNMENT/FILE   collected files, byte copies, never written again
    manifest.json         where each original came from and its sha256
    release/              fresh nbgrader release, the reference for repair
    submitted/            repaired notebooks (what nbgrader grades)
    autograded/ feedback/ reports/ exports/
    shards/ASSIGNMENT/I-of-N/   what ``grade --shard I/N`` produced, until ``merge`` copies it in
    gradebook.db          default gradebook (SQLite)
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass

from autograder import gradebook, settings
from autograder.errors import GraderError, NbgraderFailed, NotAWorkspace, UnknownAssignment

REPO = pathlib.Path(settings.REPO_ROOT)
KERNEL_MEMORY_MB = 6000  # torch (CUDA build) maps ~3 GB of address space at import
FEEDBACK_TEMPLATES = pathlib.Path(__file__).resolve().parent / "templates"  # autograder.feedback


def default_course() -> pathlib.Path:
    """The course repository: ``$AUTOGRADER_COURSE``, the repository this tool sits in, or the
    current folder, whichever holds ``solutions/`` first."""
    for candidate in (os.environ.get("AUTOGRADER_COURSE"), REPO, os.getcwd()):
        if candidate and (pathlib.Path(candidate) / "solutions").is_dir():
            return pathlib.Path(candidate).resolve()
    raise GraderError("no course repository found: pass --course PATH (the folder that holds solutions/) "
                      "or set AUTOGRADER_COURSE")


def course_assignments(course: str | os.PathLike) -> list[str]:
    """Assignment ids of a course: every ``solutions/ID/`` that holds ``ID.ipynb`` (or only its
    jupytext text source ``ID.py``)."""
    src = pathlib.Path(course) / "solutions"
    return sorted(d.name for d in src.iterdir()
                  if (d / f"{d.name}.ipynb").is_file() or (d / f"{d.name}.py").is_file())


def source_notebook(course: str | os.PathLike, assignment: str) -> dict:
    """The source notebook (solutions and hidden tests) of an assignment, as JSON."""
    folder = pathlib.Path(course) / "solutions" / assignment
    if (folder / f"{assignment}.ipynb").is_file():
        return json.loads((folder / f"{assignment}.ipynb").read_text())
    try:
        import jupytext
    except ModuleNotFoundError:
        raise GraderError(f"{folder} has only the text source {assignment}.py; install jupytext "
                          "(pip install jupytext) to grade it") from None
    return json.loads(jupytext.writes(jupytext.read(folder / f"{assignment}.py"), fmt="ipynb"))


@dataclass
class Workspace:
    root: pathlib.Path
    course: str
    db_url: str
    cell_timeout_s: int = settings.CELL_TIMEOUT_S
    kernel_memory_mb: int = KERNEL_MEMORY_MB

    # ---------------------------------------------------------------- creation and loading
    @classmethod
    def create(cls, root: str | os.PathLike, course: str | os.PathLike | None = None, db_url: str | None = None,
               cell_timeout_s: int = settings.CELL_TIMEOUT_S,
               kernel_memory_mb: int = KERNEL_MEMORY_MB) -> Workspace:
        root = pathlib.Path(root).resolve()
        course = pathlib.Path(course).resolve() if course else default_course()
        for repo in {REPO, course}:
            if root == repo or repo in root.parents:
                raise GraderError(f"{root} is inside the repository {repo}; put the grading workspace "
                                  "elsewhere (student work must never end up in a commit)")
        if not (course / "solutions").is_dir():
            raise GraderError(f"{course} has no solutions/ folder; --course must be the course repository")
        root.mkdir(parents=True, exist_ok=True)
        db_url = gradebook.normalise(db_url) if db_url else f"sqlite:///{root / 'gradebook.db'}"
        ws = cls(root, str(course), db_url, cell_timeout_s, kernel_memory_mb)
        gradebook.check(ws.db_url)  # a wrong URL fails here, not in the middle of grading
        ws.save()
        link = root / "source"
        if link.is_symlink():
            link.unlink()
        link.mkdir(exist_ok=True)
        for assignment in course_assignments(course):
            ws.link_source(assignment)
        for sub in ["originals", "release", "submitted", "autograded", "feedback", "reports", "exports"]:
            (root / sub).mkdir(exist_ok=True)
        if not ws.manifest_path.exists():
            ws.manifest_path.write_text("{}\n")
        ws.write_nbgrader_config(root, ws.db_url)
        ws.write_kernelspec()
        return ws

    @classmethod
    def load(cls, root: str | os.PathLike) -> Workspace:
        root = pathlib.Path(root).resolve()
        path = root / "workspace.json"
        if not path.exists():
            raise NotAWorkspace(f"{root} is not a grading workspace (no workspace.json); run "
                                f"`autograder init {root}` first, or pass -w DIR")
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
        return course_assignments(self.course)

    def link_source(self, assignment: str) -> None:
        """``source/ASSIGNMENT``: a link to the course's folder, or (for a text-only source) a
        folder with the notebook converted from it, rewritten each time."""
        folder = pathlib.Path(self.course) / "solutions" / assignment
        target = self.root / "source" / assignment
        if (folder / f"{assignment}.ipynb").is_file():
            if target.is_symlink() and target.resolve() == folder.resolve():
                return  # already linked (shards running at once all get here)
            if target.is_symlink():
                target.unlink()
            shutil.rmtree(target, ignore_errors=True)
            target.symlink_to(folder, target_is_directory=True)
        else:
            if target.is_symlink():
                target.unlink()
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{assignment}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(source_notebook(self.course, assignment)))
            tmp.replace(target / f"{assignment}.ipynb")

    def check_assignment(self, name: str) -> None:
        if name not in self.assignments():
            raise UnknownAssignment(f"unknown assignment {name!r}; the course has {', '.join(self.assignments())}")

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
            "    'autograder.feedback.GetGrades', 'autograder.feedback.FeedbackPage',\n"
            "    'nbconvert.preprocessors.CSSHTMLHeaderPreprocessor']\n"
            "c.HTMLExporter.template_name = 'vitcourse_feedback'\n"
            f"c.HTMLExporter.extra_template_basedirs = [{str(FEEDBACK_TEMPLATES)!r}]\n"
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
        _check_nbgrader()
        cmd = [sys.executable, "-m", "autograder.worker", *args]  # nbgrader ARGS, started faster
        done = subprocess.run(cmd, cwd=cwd or self.root, env=self.env(), capture_output=True, text=True)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"$ {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
        return done

    def start_nbgrader(self, cwd: pathlib.Path) -> subprocess.Popen:
        """An nbgrader process in ``cwd`` that imports nbgrader now and waits for its arguments on its
        standard input (``autograder.worker``)."""
        _check_nbgrader()
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen([sys.executable, "-m", "autograder.worker"], cwd=cwd, env=self.env(), text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def release(self, assignment: str, folder: pathlib.Path | None = None, db_url: str | None = None) -> pathlib.Path:
        """Generate ``FOLDER/release/ASSIGNMENT`` (default: the workspace's) from the source and
        register the assignment in the gradebook ``db_url`` (default: the workspace's)."""
        folder, db_url = folder or self.root, db_url or self.db_url
        self.link_source(assignment)
        if folder != self.root:
            folder.mkdir(parents=True, exist_ok=True)
            self.write_nbgrader_config(folder, db_url)
        log = (self.root / "reports" / assignment if folder == self.root else folder) / "generate_assignment.log"
        with gradebook.lock(db_url):
            done = self.nbgrader(["generate_assignment", assignment, "--force", "--log-level=WARN"],
                                 cwd=folder, log=log)
        if done.returncode:
            raise NbgraderFailed(f"nbgrader generate_assignment {assignment} failed (log: {log}):\n"
                                 f"{done.stderr[-3000:]}")
        return folder / "release" / assignment / f"{assignment}.ipynb"


def _check_nbgrader() -> None:
    import importlib.util

    if importlib.util.find_spec("nbgrader") is None:
        raise GraderError("nbgrader is not installed in this Python; install the grader's extra: "
                          "pip install 'vitcourse[grader]'")


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
