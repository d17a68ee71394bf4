"""Chapter 2 has no tests of its own: the checks every chapter runs (tests/chapters/solution_checks.py: the
solution on ten seeds, each plausible bug of bugs_02_position.py and each alternative of
alternatives_02_position.py, the student's view) are added by tests/chapters/conftest.py from the
registry."""
