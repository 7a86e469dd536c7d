"""glibc's allocator keeps the blocks the kit frees (medadv.allocator): a large block freed and allocated again costs
no new page faults, where glibc's defaults give it back to the kernel and fault it in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from medadv.allocator import keep_freed_memory

# Allocate and fill a 64 MiB array five times, freeing it each time; print the minor page faults of the last four.
PROBE = """
import resource, sys
import numpy as np
from medadv.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
a = np.ones(2**23); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    a = np.ones(2**23); del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
HUGE_PAGES_PER_ARRAY = 2**26 // 2**21  # at least one fault per 2 MiB page (numpy asks for transparent huge pages)


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_a_freed_large_block_is_reused_without_new_page_faults() -> None:
    assert page_faults("default") >= 4 * HUGE_PAGES_PER_ARRAY  # glibc's defaults: each new array is faulted in again
    assert page_faults("keep") < HUGE_PAGES_PER_ARRAY // 2


@pytest.mark.skipif(platform.libc_ver()[0] == "glibc", reason="off glibc only")
def test_off_glibc_nothing_is_changed() -> None:
    assert keep_freed_memory() is False
