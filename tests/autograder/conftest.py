"""The fixture course under ``fixtures/`` is grading input, not a notebook for nbval to run."""

collect_ignore_glob = ["fixtures/*"]
