"""How many CPU threads torch uses, chosen once per process by ``--threads`` / ``$PRIMEDEPTH_THREADS``.

Torch's default, one thread per physical core, is the fastest for one process on an otherwise idle machine. When
other jobs share the CPU, its threads wait for one another at every operation and a run can be several times slower
than on one thread, so the commands take a number. It is applied without importing torch: the setting goes into the
environment (``OMP_NUM_THREADS``, read when torch loads, and inherited by worker processes) and, when torch is
already loaded, straight to ``torch.set_num_threads``.
"""

from __future__ import annotations

import os
import sys

THREADS_ENV = "PRIMEDEPTH_THREADS"


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in this process and in the processes it starts."""
    os.environ[THREADS_ENV] = os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def apply_thread_setting() -> None:
    """In a worker process (e.g. a Ray actor): the thread count its parent chose, if it chose one."""
    if os.environ.get(THREADS_ENV):
        set_threads(int(os.environ[THREADS_ENV]))
