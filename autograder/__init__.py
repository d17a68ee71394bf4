"""Instructor tooling around nbgrader: release, intake, repair, grading, feedback, export."""
