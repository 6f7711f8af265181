"""The command line's allocator setting: freed memory stays with the process for reuse."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = r"""
import sys, numpy as np
from bbcodec import runtime
if sys.argv[1] == "keep":
    assert runtime.reuse_freed_memory()
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
a = np.ones(200 * 2**20, dtype=np.uint8)  # touched: resident
del a
print(rss_mb())
"""


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_freed_memory_is_kept_for_reuse_only_when_asked():
    def rss_after_free(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return float(out.stdout.strip())

    assert rss_after_free("keep") > rss_after_free("default") + 150
