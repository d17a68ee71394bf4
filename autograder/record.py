"""What happened to one student's submission of one assignment: ``reports/ASSIGNMENT/STUDENT.json``."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Literal

from autograder.repair import RepairReport

Status = Literal["pending", "graded", "corrupt", "crashed", "missing"]


@dataclass
class Submission:
    student: str
    assignment: str
    original: str = ""  # path under originals/
    status: Status = "pending"
    detail: str = ""  # why a corrupt or crashed submission was not graded
    score: float = 0.0
    max_score: float = 0.0
    cells: dict[str, float | None] = field(default_factory=dict)  # graded cell -> points
    repair: RepairReport | None = None
    flags: list[str] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)  # cells interrupted at the time limit
    memory_errors: list[str] = field(default_factory=list)  # cells that hit the memory limit
    errors: dict[str, str] = field(default_factory=dict)  # graded cell -> "ErrorName: message"
    waiting: list[str] = field(default_factory=list)  # written answers no person has scored yet
    graded_at: str = ""  # ISO time the grading run finished (regrades replace older runs)
    shard: str = ""  # "i/N" when graded by ``grade --shard``

    def reasons(self) -> list[str]:
        """Why a person should look at this submission (empty: nothing to look at)."""
        out = []
        if self.status == "corrupt":
            out.append(f"unreadable file: {self.detail}")
        if self.status == "crashed":
            out.append(f"crashed: {self.detail}")
        out += [f"flagged: {f}" for f in self.flags]
        if self.repair and self.repair.repaired:
            out.append("repaired: " + "; ".join(self.repair.describe()))
        if self.timeouts:
            out.append("timed out in " + ", ".join(self.timeouts))
        if self.memory_errors:
            out.append("memory limit hit in " + ", ".join(self.memory_errors))
        if self.waiting:
            out.append("written answers waiting for a person: " + ", ".join(self.waiting))
        return out

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Submission:
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        if isinstance(data.get("repair"), dict):
            data["repair"] = RepairReport.from_dict(data["repair"])
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        tmp.replace(path)  # never a half-written report, even if two commands race

    @classmethod
    def load(cls, path: str | os.PathLike) -> Submission:
        return cls.from_dict(json.loads(pathlib.Path(path).read_text()))
