"""Instructor tooling around nbgrader: intake, repair, grading, feedback, export.

The grader knows a course only by its folders: its chapters are the folders ``solutions/ID/`` that hold
``ID.ipynb`` or ``ID.py`` (``workspace.course_assignments``, the one place that lists them). It imports
nothing from the course's authoring package (``authoring/``, which releases the student notebooks).
"""
