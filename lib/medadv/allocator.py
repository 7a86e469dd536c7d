"""glibc's allocator told to keep the memory the kit frees instead of handing large blocks back to the kernel.

On Linux, glibc's ``malloc`` serves every block above its mmap threshold (which it moves up to at most 32 MiB) with a
fresh ``mmap`` and gives it back with ``munmap`` as soon as it is freed. A training or attack step allocates and frees
the same large activation tensors at every step (a batch of 64 images of 256 x 256 through Vnet's first block at
width 1/16 is 67 MB per tensor), so every step paid the kernel's page faults and page zeroing again. Measured on 2
CPU cores (AMD EPYC), one epoch of ``medadv pretrain --width 0.0625`` on one thread: 88 s before, 42 s after, its
system time 70 s -> 7 s. The allocator decides where a tensor lives, never what is computed into it: one epoch at
width 1/8 gives the same loss and validation AUC with and without it, and the default run's 20 checkpoints are the
same files byte for byte.

PyTorch's CPU performance guide recommends a different allocator (jemalloc or tcmalloc, loaded with ``LD_PRELOAD``);
that needs a system package and a launcher around every kernel. The kit sets glibc's own documented knobs instead
(``mallopt(3)``: ``M_MMAP_MAX``, ``M_TRIM_THRESHOLD``, ``M_TOP_PAD``), the settings of the ``MALLOC_MMAP_MAX_``,
``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` environment variables, which glibc reads only when a process starts:
too late for a Jupyter kernel that is already running. No well-kept Python package does this, so it is written here.
Where the C library is not glibc (macOS, Windows, musl) nothing is changed and :func:`keep_freed_memory` says so.

The cost: memory the process frees stays with it until it ends, and freed blocks between live ones cannot be reused
for larger ones, so a notebook's peak can rise. Measured with ``benchmarks/pipeline.py`` on the same machine: the
default profile 790 s -> 692 s, its peak unchanged (1784 -> 1791 MiB), every table byte-identical but the wall-clock
columns; the workshop profile (batches of 16 images, under glibc's own threshold) no faster (336 s -> 343 s), and its
notebook 06's peak 2484 -> 3255 MiB.
"""

from __future__ import annotations

import ctypes
import platform
import sys

#: mallopt(3) parameters (glibc's malloc.h) and the kit's values: no block is served by mmap, the heap's free top is
#: never given back (the largest value mallopt takes, 2 GiB), and the heap grows 256 MiB beyond a request at a time.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 256 * 2**20))


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks in the process for reuse (module docstring); idempotent.

    Called by :meth:`medadv.report.RunContext.open` (every notebook's kernel) and by ``medadv pretrain``.

    Returns:
        True when glibc took every setting; False where the C library is not glibc (nothing is changed there).
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
