"""Chapter 7 has no tests of its own: the checks every chapter runs (tests/chapters/solution_checks.py: the
solution on ten seeds, each plausible bug of bugs_07_swin.py and each alternative of
alternatives_07_swin.py, the student's view) are added by tests/chapters/conftest.py from the registry."""
