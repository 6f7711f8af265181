"""Where a measured number comes from: command, commit, CPU model, versions and date.

Every results file the README, the cards or ``bbcodec models`` quote carries one.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` reports it (``/proc/cpuinfo`` on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def short_commit(commit: str) -> str:
    """A stamp's commit for a report: 12 hex digits, and whether the tree had changes."""
    return commit[:12] + ("+changes" if commit.endswith("+changes") else "")


def stamp(command: str | None = None) -> dict:
    """The provenance of a run started now."""
    from importlib.metadata import version

    import numpy
    import torch

    return {
        "command": command or " ".join(["python", *sys.orig_argv[1:]]),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "constriction": version("constriction"),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
