"""The course's authoring pipeline: from the registry (course.toml) to what readers, students and the
grader get. Not part of the library students install; run from this tree (``python -m authoring STEP``,
or through ``tasks.py``).

    registry       course.toml -> Course, Chapter (ids, titles, where each part of a chapter lives)
    layout         the parts every chapter has; what the scaffold writes and the layout test checks
    setup_cell     the stamp of each notebook source: reading link, set-up cell pinned to the release
    derived        files written from the registry: _toc.yml, _config.yml, versions, intro, README, stamps
    notebooks      solutions/ID/ID.py (text) -> solutions/ID/ID.ipynb; the one stable JSON formatting
    release        solutions/ -> notebooks/ with nbgrader (the grader's nbgrader settings)
    sync           derived, then notebooks, then release          (tasks.py sync)
    configure      set repository / branch / site, then sync     (tasks.py configure)
    scaffold       a new chapter: registry entry, every part, sync (tasks.py new)
    vendor_assets  the site's JavaScript, vendored from npm

The data flow::

    course.toml ─ derived ─> _toc.yml, _config.yml, pyproject.toml, src/vitcourse/version.py,
                │            book/intro.md's list, README's count, stamps in solutions/ID/ID.py
                │                     └ notebooks ─> solutions/ID/ID.ipynb ─ release ─> notebooks/ID/ID.ipynb
                ├─> the site (Jupyter Book reads _toc.yml; book/_ext/course_pages.py reads the registry)
                └─> tests (tests/test_layout.py, the chapter tests, ``--chapter`` marks)

The grader (``autograder``) imports nothing from here: it finds a course's chapters as the folders
``solutions/ID/`` that hold ``ID.ipynb`` or ``ID.py`` (``autograder.workspace.course_assignments``).
This package uses the grader's nbgrader cell reading (``autograder.cells``) and settings.
"""
