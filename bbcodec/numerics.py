"""Pin torch's CPU kernels, so a file written on one machine decodes on any other.

Why this exists: torch chooses its float kernels by CPU. ATen's elementwise loops
come in AVX2 and AVX-512 builds, oneDNN picks convolution kernels per instruction
set, MKL picks GEMM code paths, and the builds round differently in the last bit.
The coder needs *bit-identical* distribution parameters on both sides
(DESIGN.md §4), so a last-bit difference between the writer's CPU and the reader's
CPU is a file that does not decode. Measured on one AMD EPYC (AVX-512) machine,
30 MNIST digits coded with the tiny golden model gave four different byte strings
under four kernel settings; a file written on an earlier AVX2-only machine
decoded here only with ATen *and* oneDNN held to AVX2.

So every coding call first holds ATen and oneDNN to their AVX2 code paths
(which every x86-64 CPU of the last decade runs) with coding threads fixed
(:data:`bbcodec.bitsback.CODING_THREADS`). The choice must be made before torch
runs its first kernel in the process, which is why :func:`pin` sets environment
variables and why :func:`portable_profile` checks that they took effect instead of
hoping. Training never pins (it wants AVX-512 and bf16 where a CPU has them).

Machines that cannot run the pinned kernels (no AVX2, or not x86-64) still code,
but their files carry the name of their kernel profile and decode only where the
same profile runs; the reader says so before any work instead of failing late.
"""

from __future__ import annotations

import os
import platform

from bbcodec.errors import NumericsError

PORTABLE_PROFILE = ""  # files written under the pinned kernels carry no profile name
# MKL is left alone on purpose: setting MKL_CBWR (any value, even AUTO) switches MKL
# to its reproducible-results mode, which computes GEMMs differently from its default,
# and every file written so far was written in the default mode (measured: with
# MKL_CBWR=AVX2 no golden file decodes; without it all do, including one written on
# an earlier machine).
PINNED_ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
_X86_64 = ("x86_64", "amd64")


def pin() -> None:
    """Ask torch for the portable kernels; effective only before its first kernel runs.

    Call it before any other torch work in a process that codes (the benchmark
    and the test suite do on import; :func:`bbcodec.compress` and
    :func:`bbcodec.decompress` call it first, which covers the CLI).
    """
    if platform.machine().lower() in _X86_64:
        os.environ.update(PINNED_ENVIRONMENT)


def _cpu_has_avx2() -> bool:
    import torch

    return bool(torch.cpu._is_avx2_supported())


def current_profile() -> str:
    """The kernel profile this process codes with: ``""`` (portable) or a native name."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    machine = platform.machine().lower()
    pinned = all(os.environ.get(k) == v for k, v in PINNED_ENVIRONMENT.items())
    if machine in _X86_64 and capability == "AVX2" and pinned:
        return PORTABLE_PROFILE
    return f"{machine}/{capability.lower()}"


def portable_profile() -> str:
    """Pin, then return the profile to record in a file; refuse what would not be portable.

    On an x86-64 CPU with AVX2 the profile must be the portable one: if torch ran a
    kernel before bbcodec could pin it, coding here would write files that other
    machines cannot read, so this raises with the fix. Elsewhere the native profile
    is returned and recorded.
    """
    pin()
    profile = current_profile()
    if profile != PORTABLE_PROFILE and platform.machine().lower() in _X86_64 and _cpu_has_avx2():
        settings = " ".join(f"{k}={v}" for k, v in PINNED_ENVIRONMENT.items())
        raise NumericsError(
            f"torch already runs its {profile.split('/')[-1].upper()} kernels in this process, so files coded "
            "here would not decode on other machines. Call bbcodec.numerics.pin() before any other torch work, "
            f"or start Python with {settings}.")
    return profile


def require_profile(recorded: str) -> None:
    """Refuse, before any decoding work, a file whose kernels this process does not run."""
    here = portable_profile() if recorded == PORTABLE_PROFILE else current_profile()
    if here != recorded:
        wanted = "the portable x86-64 AVX2 kernels" if recorded == PORTABLE_PROFILE else f"the {recorded} kernels"
        raise NumericsError(f"this file was coded with {wanted}; this machine runs {here or 'the portable ones'} "
                            "and would compute different probabilities, so it cannot decode the file exactly")
