"""Worker processes that end when their parent does.

A ``ProcessPoolExecutor`` worker blocks on its call queue forever when the parent
is killed with SIGKILL: its siblings hold the queue's pipe open, so it never sees
end of file. :func:`die_with_parent` is the pool initializer that prevents this:
on Linux it asks the kernel for SIGKILL when the parent goes
(``prctl(PR_SET_PDEATHSIG)``), and everywhere it checks that the parent it was
started for is still its parent (closing the race where the parent died before
the ``prctl`` call). :func:`exit_if_orphaned` is the same check for long loops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent thread ends."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def exit_if_orphaned(parent_pid: int) -> None:
    """End this process at once if ``parent_pid`` is no longer its parent."""
    if os.getppid() != parent_pid:
        os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: this worker is killed when ``parent_pid`` ends.

    The parent passes its own PID (``initargs=(os.getpid(),)``); the kernel
    signal covers a later death, the PID check one that happened before it.
    """
    _set_parent_death_signal(signal.SIGKILL)
    exit_if_orphaned(parent_pid)


def kill_self() -> None:
    """End this process with SIGKILL, as a crash would (for the crash tests' hook)."""
    os.kill(os.getpid(), signal.SIGKILL)
