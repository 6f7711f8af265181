"""How many threads coding uses on a machine that other processes share.

Why: a coding step is a few dozen small parallel kernels (tens of microseconds each)
whose threads meet after every one. When another process holds a core, the thread
that arrives first waits for one the scheduler has put aside, and every step pays a
time slice: with one other process spinning on one of two cores, two-thread coding
ran 11 to 29 times slower than with the machine to itself, and 6 to 20 times slower than
following the free cores (``python -m bench.busy_speed``, ``bench/results/busy_speed.json``).
:class:`CoreShare` watches how much of this process's CPUs other processes took since
the last look (``/proc/stat`` minus this process's own time) and codes on the cores
they leave. It decides at group boundaries, where nothing is in flight, and, for a
large job, once before the first group after a short look (a job's first group may be
its largest). Thread counts never change what is coded: every kernel's result is an
exact integer whatever the threads (the kernel matrix tests), so files are the same
bytes.

Where ``/proc`` is missing (not Linux) nothing changes. ``BBCODEC_FIXED_THREADS=1``
in the environment turns the watching off (benchmarks compare the two).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numba
import torch

MIN_INTERVAL_S = 0.1  # shorter windows hold too few clock ticks to tell who used the CPU
PROBE_S = 0.05  # the look before a large job's first group (a 100 Hz clock: 5 ticks a core)
PROBE_PIXELS = 1 << 18  # jobs of this many pixels (a few hundred digits) take the look
REUSE_S = 1.0  # a decision this recent (an earlier job's) is reused instead of looking again
FIXED_ENV = "BBCODEC_FIXED_THREADS"


_recent: tuple[float, int] | None = None  # (when, threads) of this process's last decision


@dataclass(frozen=True)
class Sample:
    """CPU time (clock ticks) at one moment: busy time of this process's CPUs, and of this process."""

    wall: float
    cpus_busy: int
    own: int


def threads_for(others_cores: float, cpus: int, most: int) -> int:
    """The threads to code on when other processes used ``others_cores`` of this process's
    ``cpus`` CPUs: the cores they leave, rounded, between 1 and ``most``."""
    return max(1, min(most, round(cpus - others_cores)))


def _busy_ticks(cpus: set[int]) -> int | None:
    """Non-idle ticks of ``cpus`` summed (user, nice, system, irq, softirq, steal), from ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            lines = f.readlines()
    except OSError:
        return None
    total = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        fields = [int(v) for v in rest.split()]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        total += user + nice + system + irq + softirq + steal
    return total


def _own_ticks() -> int | None:
    """This process's user + system ticks (every thread), from ``/proc/self/stat``."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of the whole line


class CoreShare:
    """Threads for coding, re-decided at each :meth:`update` from what other processes
    used since the previous decision; :meth:`close` puts the counts back. A context
    manager: ``with CoreShare() as share: ... share.update() ...``."""

    def __init__(self, probe: bool = False) -> None:
        """``probe``: look before the first group (a job long enough to pay for the look)."""
        self.torch_before, self.numba_before = torch.get_num_threads(), numba.get_num_threads()
        self.most = self.torch_before
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.active = os.environ.get(FIXED_ENV, "") != "1" and self.most > 1
        self.threads = self.most
        self.last = self._sample() if self.active else None
        self.active = self.last is not None
        if self.active:
            self._start(probe)

    def _start(self, probe: bool) -> None:
        """Threads for the first group: a recent decision's, or a short look's when ``probe``."""
        global _recent
        if _recent is not None and time.monotonic() - _recent[0] < REUSE_S:
            self._apply(_recent[1])
        elif probe:
            time.sleep(PROBE_S)
            self.update(at_least=0.0)

    def _sample(self) -> Sample | None:
        busy, own = _busy_ticks(self.cpus), _own_ticks()
        if busy is None or own is None:
            return None
        return Sample(time.monotonic(), busy, own)

    def others_cores(self, now: Sample) -> float:
        """Cores other processes kept busy between the last sample and ``now``."""
        elapsed = now.wall - self.last.wall
        others = (now.cpus_busy - self.last.cpus_busy) - (now.own - self.last.own)
        return max(0.0, others / self.hz / elapsed)

    def update(self, at_least: float | None = None) -> int:
        """Re-decide the thread count when ``at_least`` seconds (default
        :data:`MIN_INTERVAL_S`) have passed since the last decision; the count in force."""
        global _recent
        if not self.active:
            return self.threads
        now = self._sample()
        wait = MIN_INTERVAL_S if at_least is None else at_least
        if now is None or now.wall - self.last.wall < max(wait, 1e-3):
            return self.threads
        self._apply(threads_for(self.others_cores(now), len(self.cpus), self.most))
        self.last = now
        _recent = (now.wall, self.threads)
        return self.threads

    def _apply(self, threads: int) -> None:
        self.threads = threads
        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, self.numba_before))

    def close(self) -> None:
        torch.set_num_threads(self.torch_before)
        numba.set_num_threads(self.numba_before)

    def __enter__(self) -> CoreShare:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
