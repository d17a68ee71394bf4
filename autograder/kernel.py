"""IPython kernel with an address-space limit, the kernel nbgrader starts in a grading workspace.

The limit (MiB) comes from ``VITCOURSE_KERNEL_MEMORY_MB``: an allocation past it fails inside the
student's cell (``MemoryError`` or torch's "can't allocate memory") instead of starving the machine.
"""

import os
import resource

limit_mb = int(os.environ.get("VITCOURSE_KERNEL_MEMORY_MB", "0"))
if limit_mb > 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit_mb * 2**20, limit_mb * 2**20))

if __name__ == "__main__":
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
