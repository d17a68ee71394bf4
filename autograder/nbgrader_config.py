"""nbgrader configuration of the course (nbgrader 0.9.6).

The repository is the course directory: ``solutions/`` holds the nbgrader sources and
``notebooks/`` the released student versions (``python3.11 tasks.py release`` writes them). The instructor tool in
this package builds grading workspaces from the same settings (see ``autograder.settings``).
"""

import os

from autograder import settings

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.root = settings.REPO_ROOT
c.CourseDirectory.course_id = settings.COURSE_ID
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = os.environ.get("VITCOURSE_GRADEBOOK", settings.DEFAULT_DB_URL)
settings.apply(c)
