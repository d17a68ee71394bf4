"""Intake: copy students' notebooks into the workspace, placed by student and chapter.

Two sources:

- a folder of downloaded notebooks: either one sub-folder per student (``alice/Copy of 05-dino.ipynb``)
  or files whose name starts with the student (``alice_05-dino.ipynb``, LMS style
  ``alice_12345_67890_05-dino.ipynb``); the roster CSV (column ``student_id``, optional ``name``
  and ``email``) says who the students are;
- an LMS zip of such files (read in place, never extracted over anything).

File names are mapped to chapters leniently: ``Copy of 05-dino.ipynb``, ``05-dino (2).ipynb``,
``05_dino.ipynb`` and ``05-DINO.ipynb`` all mean ``05-dino``. Notebooks that cannot be placed are
reported as ``unplaced`` (the command line then exits with status 1); other files are ``skipped``.
The files collected are byte copies checked by hash; the source is only read.
"""

from __future__ import annotations

import csv
import json
import pathlib
import re
import shutil
import tempfile
import zipfile

from autograder.errors import GraderError
from autograder.workspace import Workspace, sha256


def normalise(name: str) -> str:
    """``Copy of 05_DINO (2).ipynb`` -> ``05-dino``."""
    stem = re.sub(r"\.ipynb$", "", pathlib.Path(name).name, flags=re.I)
    stem = re.sub(r"^(copy of\s+)+", "", stem.strip(), flags=re.I)
    stem = re.sub(r"\s*[\(\[]\d+[\)\]]\s*$", "", stem)  # " (2)"
    stem = re.sub(r"\s*-\s*copy(\s*\d+)?$", "", stem, flags=re.I)  # "05-dino - Copy"
    return re.sub(r"[\s_]+", "-", stem.strip()).lower()


def chapter_for(name: str, assignments: list[str]) -> str | None:
    """The chapter a file name refers to, or None. ``name`` may carry a student prefix."""
    stem = normalise(name)
    for assignment in assignments:
        if stem == assignment.lower() or stem.endswith("-" + assignment.lower()):
            return assignment
    # "05.ipynb", "05-dino-v2": fall back on the chapter number when it is unambiguous
    m = re.match(r"^(\d{2})(?:\D|$)", stem)
    if m:
        hits = [a for a in assignments if a.startswith(m.group(1) + "-")]
        if len(hits) == 1:
            return hits[0]
    return None


def read_roster(path: str | pathlib.Path) -> dict[str, str]:
    """{alias (id, name or email, lower case): student_id}."""
    aliases = {}
    if not pathlib.Path(path).is_file():
        raise GraderError(f"roster {path} not found; pass --roster with the CSV of the class")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"student_id", "id"} & set(reader.fieldnames or []):
            raise GraderError(f"roster {path} has no student_id column (columns: {reader.fieldnames}); "
                              "add one, e.g. the LMS login of each student")
        for row in reader:
            sid = (row.get("student_id") or row.get("id") or "").strip()
            if not sid:
                continue
            for key in ("student_id", "id", "name", "email", "login"):
                value = (row.get(key) or "").strip().lower()
                if value:
                    aliases[value] = sid
                    aliases[re.sub(r"[^a-z0-9]", "", value)] = sid
    return aliases


def _student_for(rel: pathlib.PurePath, roster: dict[str, str]) -> str | None:
    if len(rel.parts) > 1:
        folder = rel.parts[0].strip().lower()
        for candidate in (folder, re.sub(r"[^a-z0-9]", "", folder)):
            if candidate in roster:
                return roster[candidate]
    name = rel.name.lower()
    prefix = re.split(r"[_\s]", name, maxsplit=1)[0]
    for candidate in (prefix, re.sub(r"[^a-z0-9]", "", prefix)):
        if candidate in roster:
            return roster[candidate]
    return None


def _copy_number(name: str) -> int:
    m = re.search(r"\((\d+)\)\s*\.ipynb$", name)
    return int(m.group(1)) if m else 0


def collect(ws: Workspace, source: str | pathlib.Path, roster: str | pathlib.Path) -> dict:
    """Collect ``source`` (folder or .zip) into ``ws``. Returns the intake report."""
    source = pathlib.Path(source)
    if not source.exists():
        raise GraderError(f"{source} not found; pass the LMS zip or the folder of downloaded notebooks")
    if source.suffix.lower() == ".zip":
        if not zipfile.is_zipfile(source):
            raise GraderError(f"{source} is not a readable zip file; download it again from the LMS")
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(source) as z:
                for info in z.infolist():
                    target = (pathlib.Path(tmp) / info.filename).resolve()
                    if info.is_dir() or pathlib.Path(tmp).resolve() not in target.parents:
                        continue  # folders, and names that would escape the folder
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(info))
            report = _collect_folder(ws, pathlib.Path(tmp), roster, label=str(source))
        return report
    return _collect_folder(ws, source, roster, label=str(source))


def _collect_folder(ws: Workspace, folder: pathlib.Path, roster_path, label: str) -> dict:
    roster = read_roster(roster_path)
    assignments = ws.assignments()
    placed: dict[str, list[pathlib.Path]] = {}
    unplaced, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts):
            continue
        if path.suffix.lower() != ".ipynb":
            skipped.append({"file": str(rel), "why": "not a notebook"})
            continue
        student = _student_for(rel, roster)
        chapter = chapter_for(rel.name, assignments)
        if student is None:
            unplaced.append({"file": str(rel), "why": "no roster student matches the folder or file name"})
        elif chapter is None:
            unplaced.append({"file": str(rel), "why": f"file name matches no chapter of {assignments}"})
        else:
            placed.setdefault(f"{student}/{chapter}", []).append(path)

    ws.add_students(sorted(set(roster.values())))
    manifest = ws.manifest()
    collected, duplicates = [], []
    for key, paths in sorted(placed.items()):
        # Several files for one chapter: the newest copy ("X (3)" beats "X (2)" beats "X"), rest reported.
        paths.sort(key=lambda p: (_copy_number(p.name), p.stat().st_mtime))
        chosen = paths[-1]
        duplicates += [{"file": str(p.relative_to(folder)), "why": f"older copy; {chosen.name} used for {key}"}
                       for p in paths[:-1]]
        dest_dir = ws.root / "originals" / key
        if dest_dir.exists():
            for old in dest_dir.iterdir():
                old.chmod(0o644)
                old.unlink()
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / chosen.name
        shutil.copyfile(chosen, dest)
        digest = sha256(chosen)
        if sha256(dest) != digest:
            raise GraderError(f"the copy of {chosen} does not hash like the original (disk full or "
                              f"failing?); free space under {ws.root} and collect again")
        dest.chmod(0o444)
        manifest[key] = {"file": f"{key}/{chosen.name}", "sha256": digest,
                         "source": f"{label}:{chosen.relative_to(folder)}"}
        collected.append(key)
    ws.write_manifest(manifest)
    report = {"collected": collected, "unplaced": unplaced, "skipped": skipped, "duplicates": duplicates}
    out = ws.root / "reports" / "collect.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    return report
