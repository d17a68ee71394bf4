"""Exports: the grades CSV and the list of submissions that need a human.

``exports/grades.csv``: one row per student and chapter (score, max, status), then one ``TOTAL``
row per student; a roster student who handed nothing in for a graded chapter has status ``missing``.
``exports/needs_human.csv``: every submission that was flagged, repaired, timed out, hit the memory
limit, crashed or could not be read, with the reasons.
"""

from __future__ import annotations

import csv
import json

from autograder.workspace import Workspace


def reasons(record: dict) -> list[str]:
    out = []
    if record["status"] == "corrupt":
        out.append(f"unreadable file: {record.get('detail', '')}")
    if record["status"] == "crashed":
        out.append(f"crashed: {record.get('detail', '')}")
    out += [f"flagged: {f}" for f in record.get("flags", [])]
    rep = record.get("repair") or {}
    if rep.get("repaired"):
        bits = [f"{k} matched by {v}" for k, v in rep.get("answers", {}).items() if v != "grade_id"]
        bits += [f"test cell {t} restored" for t in rep.get("tests_restored", [])]
        bits += [f"test cell {t} was edited" for t in rep.get("tests_edited", [])]
        bits += [f"{t} changed type" for t in rep.get("type_changed", [])]
        if rep.get("extra_cells_kept"):
            bits.append(f"{rep['extra_cells_kept']} added code cell(s) kept")
        out.append("repaired: " + "; ".join(bits))
    if record.get("timeouts"):
        out.append("timed out in " + ", ".join(record["timeouts"]))
    if record.get("memory_errors"):
        out.append("memory limit hit in " + ", ".join(record["memory_errors"]))
    return out


def export(ws: Workspace) -> tuple[str, str]:
    """Write the two CSV files; returns their paths."""
    records = []
    for path in sorted((ws.root / "reports").glob("*/*.json")):
        records.append(json.loads(path.read_text()))
    # A roster student with nothing collected for a graded chapter gets a row too (score 0).
    graded = {r["assignment"]: r.get("max_score", 0.0) for r in records}
    have = {(r["student"], r["assignment"]) for r in records}
    for student in ws.students():
        for assignment, max_score in sorted(graded.items()):
            if (student, assignment) not in have:
                records.append({"student": student, "assignment": assignment, "status": "missing",
                                "score": 0.0, "max_score": max_score})
    out_dir = ws.root / "exports"
    out_dir.mkdir(exist_ok=True)
    grades, human = out_dir / "grades.csv", out_dir / "needs_human.csv"
    totals: dict[str, list[float]] = {}
    with grades.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "score", "max_score", "status", "needs_human"])
        for r in sorted(records, key=lambda r: (r["student"], r["assignment"])):
            score, max_score = float(r.get("score", 0.0)), float(r.get("max_score", 0.0))
            w.writerow([r["student"], r["assignment"], f"{score:g}", f"{max_score:g}", r["status"],
                        "yes" if reasons(r) else "no"])
            t = totals.setdefault(r["student"], [0.0, 0.0])
            t[0] += score
            t[1] += max_score
        for student, (score, max_score) in sorted(totals.items()):
            w.writerow([student, "TOTAL", f"{score:g}", f"{max_score:g}", "", ""])
    with human.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "status", "score", "reasons"])
        for r in sorted(records, key=lambda r: (r["student"], r["assignment"])):
            why = reasons(r)
            if why:
                w.writerow([r["student"], r["assignment"], r["status"], f"{float(r.get('score', 0)):g}",
                            " | ".join(why)])
    return str(grades), str(human)
