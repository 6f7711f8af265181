"""Coding threads on a shared machine (:mod:`bbcodec.threads`): the rule, the CPU-time
readings it rests on, its reaction to processes that hold every core, and that a
thread count changing between groups changes no byte of a file."""

from __future__ import annotations

import multiprocessing
import os
import platform
import time

import numba
import numpy as np
import pytest
import torch

from bbcodec import api, threads
from bbcodec.data import load_mnist

linux_only = pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc")


@pytest.mark.parametrize(("others", "cpus", "most", "expected"), [
    (0.0, 2, 2, 2), (0.3, 2, 2, 2), (1.0, 2, 2, 1), (2.0, 2, 2, 1), (5.0, 2, 2, 1),
    (0.2, 4, 4, 4), (1.6, 4, 4, 2), (0.0, 8, 4, 4), (3.0, 8, 4, 4), (6.2, 8, 4, 2),
])
def test_coding_takes_the_cores_other_processes_leave(others, cpus, most, expected):
    assert threads.threads_for(others, cpus, most) == expected


@linux_only
def test_this_process_cpu_time_is_read_from_proc():
    cpus = os.sched_getaffinity(0)
    own0, busy0 = threads._own_ticks(), threads._busy_ticks(cpus)
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # 30 ticks of a 100 Hz clock on this thread
        pass
    own1, busy1 = threads._own_ticks(), threads._busy_ticks(cpus)
    assert own1 - own0 >= 10
    assert busy1 - busy0 >= own1 - own0 - 2  # the CPUs were busy at least while this process was


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@linux_only
@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one thread already")
def test_processes_holding_every_core_leave_one_thread_and_the_counts_come_back():
    before = torch.get_num_threads(), numba.get_num_threads()
    context = multiprocessing.get_context("spawn")
    hogs = [context.Process(target=_spin, args=(6.0,)) for _ in os.sched_getaffinity(0)]
    for hog in hogs:
        hog.start()
    try:
        time.sleep(1.0)  # the spawned interpreters are up and spinning
        with threads.CoreShare() as share:
            time.sleep(0.5)
            assert share.update() == 1
            assert torch.get_num_threads() == 1
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    assert (torch.get_num_threads(), numba.get_num_threads()) == before


def test_fixed_threads_in_the_environment_turn_the_watching_off(monkeypatch):
    monkeypatch.setenv(threads.FIXED_ENV, "1")
    share = threads.CoreShare(probe=True)
    assert not share.active
    assert share.update(at_least=0.0) == torch.get_num_threads()


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one thread already")
def test_thread_counts_changing_between_groups_change_no_byte(monkeypatch):
    digits = load_mnist("test")[0][:40]
    model = "vlae-mnist-fast-q8"
    monkeypatch.setenv(threads.FIXED_ENV, "1")
    fixed = api.compress(list(digits), model=model)
    lossy_fixed = api.compress(list(digits), model=model, lossy_step=0.5)
    monkeypatch.delenv(threads.FIXED_ENV)
    asked: list[int] = []

    def alternate(*_: object) -> int:
        asked.append(1 + len(asked) % 2)
        return asked[-1]

    monkeypatch.setattr(threads, "threads_for", alternate)
    monkeypatch.setattr(threads, "MIN_INTERVAL_S", 0.0)  # re-decide at every group
    monkeypatch.setattr(threads, "_recent", None)
    switching = api.compress(list(digits), model=model)
    assert switching == fixed
    assert api.compress(list(digits), model=model, lossy_step=0.5) == lossy_fixed
    assert all(np.array_equal(a, b) for a, b in zip(api.decompress(switching), digits, strict=True))
    assert {1, 2} <= set(asked)  # both counts were in force between groups
