"""Files must decode on other machines: the coder runs torch's pinned AVX2 kernels
(bbcodec.numerics), records any other kernel profile in the header, and refuses a
file whose profile this process does not run before doing any decoding work."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bbcodec
from bbcodec import container, numerics
from bbcodec.errors import NumericsError
from tests.conftest import random_digits

X86_WITH_AVX2 = platform.machine().lower() in ("x86_64", "amd64") and torch.cpu._is_avx2_supported()
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not X86_WITH_AVX2, reason="the portable kernels need an x86-64 CPU with AVX2")
def test_the_test_process_codes_with_the_portable_kernels(zoo_env):
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert numerics.current_profile() == numerics.PORTABLE_PROFILE
    data = bbcodec.compress(list(random_digits(2)), model="tiny")
    assert bbcodec.inspect(data).numerics == "portable"


def test_a_native_profile_round_trips_through_the_header(zoo_env):
    header, words = container.unpack(bbcodec.compress(list(random_digits(2)), model="tiny"))
    header.numerics = "aarch64/default"
    again, again_words = container.unpack(container.pack(header, words))
    assert again.numerics == "aarch64/default"
    np.testing.assert_array_equal(again_words, words)
    with pytest.raises(ValueError, match="at most"):
        header.numerics = "x" * (container.MAX_PROFILE_BYTES + 1)
        container.pack(header, words)


def test_a_file_of_other_kernels_is_refused_before_decoding(zoo_env):
    header, words = container.unpack(bbcodec.compress(list(random_digits(2)), model="tiny"))
    header.numerics = "aarch64/default"
    foreign = container.pack(header, words)
    assert bbcodec.inspect(foreign).numerics == "aarch64/default"
    with pytest.raises(NumericsError, match="aarch64/default"):
        bbcodec.decompress(foreign)


@pytest.mark.skipif(not (X86_WITH_AVX2 and torch.cpu._is_avx512_supported()),
                    reason="only a CPU with AVX-512 runs different kernels when nothing is pinned")
def test_coding_after_torch_ran_unpinned_kernels_is_refused_with_the_fix(tiny_zoo):
    """A library user who runs torch work first gets a clear error, not unportable files."""
    script = ("import torch; torch.ones(3).exp(); import bbcodec, numpy as np\n"
              "try:\n    bbcodec.compress([np.zeros((12, 12), np.uint8)], model='tiny')\n"
              "except bbcodec.NumericsError as e:\n    print('refused:', e)\n")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENVIRONMENT}
    env["BBCODEC_MODELS_DIR"] = str(tiny_zoo)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert "refused:" in out.stdout and "numerics.pin()" in out.stdout, out.stdout + out.stderr
