"""Exact integer coding: the same bytes under every kernel setting, no unproven float op,
the stored tables and the format's random stream pinned, layer bounds proven."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bbcodec
from bbcodec.exact import tables
from bbcodec.exact.fixed import BoundError, EXACT_LIMIT
from bbcodec.exact.guard import FloatGuard, UnprovenFloatOp
from bbcodec.exact.layers import ILinear, check_layers, silu, silu_reference
from bbcodec.exact.random import uniform24

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
MATRIX_CASES = ["tiny_importance.bbc", "wide_q8_lossy.bbc", "rgb_tiled.bbc", "tiny_int8.bbc",
                "default_int8_one_digit.bbc", "binary_int8_digits.bbc", "mnist_int8_w7_crops.bbc",
                "default_q8_int8enc_digits.bbc", "fast_q8_digits.bbc"]


def _settings() -> dict[str, tuple[dict[str, str], list[str]]]:
    """Kernel settings that change torch's float results (DESIGN.md §4) and must change nothing here."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    out = {
        "default": ({}, []),
        "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, []),
        "aten-scalar": ({"ATEN_CPU_CAPABILITY": "default"}, []),
        "onednn-sse41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, []),
        "onednn-avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, []),
        "mkl-avx2": ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, []),
        "mkl-cbwr-compatible": ({"MKL_CBWR": "COMPATIBLE"}, []),
        "one-thread": ({"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "BBCODEC_TEST_THREADS": "1"}, []),
        "three-threads": ({"OMP_NUM_THREADS": "3", "NUMBA_NUM_THREADS": "3", "BBCODEC_TEST_THREADS": "3"}, []),
        "flush-denormal": ({}, ["--flush-denormal"]),
    }
    if " avx512f" in flags:
        out["aten-avx512"] = ({"ATEN_CPU_CAPABILITY": "avx512"}, [])
    return out


@pytest.mark.parametrize("setting", sorted(_settings()))
def test_every_kernel_setting_writes_the_golden_bytes_and_decodes_them(setting):
    """Encoding under this setting gives the golden files' exact bytes (written on another
    run, and possibly another CPU), and the golden files decode under it."""
    env_update, args = _settings()[setting]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATEN_", "ONEDNN_", "MKL_"))}
    env.update(env_update)
    run = subprocess.run([sys.executable, str(HERE / "exact_matrix_worker.py"), *args, *MATRIX_CASES],
                         capture_output=True, text=True, env=env, cwd=HERE.parent, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    bad = {case: r for case, r in report["cases"].items() if not (r["same_bytes"] and r["decodes"])}
    assert not bad, (setting, report["capability"], bad)
    assert report["int8_products_exact"], (setting, "torch._int_mm gave other sums at the weight-digit bounds")


def _coding_modes(zoo: Path) -> None:
    """Every coding path once: plain, anchored, importance weighted, lossy, tiled, coupled, binary."""
    inputs = np.load(GOLDEN / "v2" / "inputs.npz")
    digits = list(inputs["tiny_digits"])
    for kwargs in ({}, {"samples": 3}, {"model": "tiny-vlae"}, {"model": "tiny-vlae", "lossy_step": 1.0},
                   {"model": "tiny-vlae-int8"}, {"model": "tiny-vlae-int8", "lossy_step": 1.0}):
        images = [d[:12, :12] for d in digits] if kwargs.get("model", "").startswith("tiny-vlae") else digits
        data = bbcodec.compress(images * 4, **{"model": "tiny", **kwargs})
        bbcodec.decompress(data)
    binary = [(d[:12, :12] > 127).astype(np.uint8) for d in digits]
    bbcodec.decompress(bbcodec.compress(binary, model="tiny-vlae-binary"))
    rgb = np.repeat(digits[0][:, :, None], 3, axis=2)
    bbcodec.decompress(bbcodec.compress([rgb], model="tiny-rgb"))
    bbcodec.decompress(bbcodec.compress([np.tile(digits[0], (2, 2))[:40, :36]], model="tiny-local"))


def test_the_coding_path_runs_only_proven_float64_ops(zoo_env):
    _coding_modes(zoo_env)  # loads (and proves) the models outside the guard: loading is not coding
    guard = FloatGuard()
    with torch.no_grad(), guard:
        _coding_modes(zoo_env)
    assert "aten.addmm.default" in guard.seen  # the guard saw the networks run


def test_the_guard_refuses_float32_and_unlisted_ops():
    with pytest.raises(UnprovenFloatOp, match="float32"), FloatGuard():
        torch.ones(3) + 1
    with pytest.raises(UnprovenFloatOp, match="EXACT_FLOAT64_OPS"), FloatGuard():
        torch.exp(torch.ones(3, dtype=torch.float64))


def test_shipped_models_prove_their_bounds_on_load():
    for info in bbcodec.list_models():
        model, _ = bbcodec.load_model(info.name)
        assert 0 < max(check_layers(model).values()) < EXACT_LIMIT


def test_a_layer_whose_sums_could_round_is_refused():
    layer = ILinear(1 << 16, 1)
    layer.weight.fill_(2047.0)
    with pytest.raises(BoundError, match="2\\^53"):
        check_layers(layer)


def test_tables_are_the_shipped_file_and_regenerate_within_one_unit():
    assert tables.file_sha256() == tables.SHA256
    stored, rebuilt = tables.load().int, tables.build()
    for name, table in stored.items():
        assert int((table - rebuilt[name]).abs().max()) <= 1, name


def test_compiled_silu_equals_its_torch_definition():
    x = torch.round(torch.randn(4096, dtype=torch.float64) * 2**17).clamp(-(2**27), 2**27)
    assert torch.equal(silu(x), silu_reference(x))


@pytest.mark.parametrize("c_in, c_out, k, stride, size", [(1, 8, 3, 2, 28), (8, 8, 3, 1, 14), (8, 5, 3, 2, 13),
                                                         (3, 4, 5, 1, 9)])
def test_convolutions_by_rows_equal_float64_conv2d(c_in, c_out, k, stride, size):
    """The im2col products give conv2d's integers, at the bound's edge (largest activations)."""
    from bbcodec.exact.fixed import ACT_LIMIT
    from bbcodec.exact.layers import CONV_ROWS_PER_BLOCK, IConv2d

    gen = torch.Generator().manual_seed(k * size)
    conv = torch.nn.Conv2d(c_in, c_out, k, stride, padding=k // 2)
    layer = IConv2d.of(conv)
    n = 2 * CONV_ROWS_PER_BLOCK // (size * size) + 3  # more than one block of rows
    x = torch.randint(-ACT_LIMIT, ACT_LIMIT + 1, (n, c_in, size, size), generator=gen).double()
    x[0] = ACT_LIMIT
    assert torch.equal(layer(x), layer.reference(x))
    assert torch.equal(layer.after_silu(x), layer.reference(silu(x)))  # the SiLU as the rows are gathered


def test_pointwise_convolutions_by_blocks_of_images_equal_float64_conv2d(monkeypatch):
    """A 1x1 layer runs a block of images at a time (bounded memory at a photo's full
    resolution): every block, the last one short, gives conv2d's integers, with and
    without the SiLU applied on the way."""
    from bbcodec.exact import layers
    from bbcodec.exact.fixed import ACT_LIMIT

    monkeypatch.setattr(layers, "POINTWISE_ROWS_PER_BLOCK", 3 * 7 * 5)  # 3 images a block
    gen = torch.Generator().manual_seed(11)
    layer = layers.IConv2d.of(torch.nn.Conv2d(6, 9, 1))
    x = torch.randint(-ACT_LIMIT, ACT_LIMIT + 1, (8, 6, 7, 5), generator=gen).double()
    x[0] = ACT_LIMIT
    assert torch.equal(layer(x), layer.reference(x))
    assert torch.equal(layer.after_silu(x), layer.reference(silu(x)))


def test_conditioning_rows_by_position_are_each_images_pixel():
    """A decoding step of the wide pixel net reads position t of every image."""
    from bbcodec.exact.local import PositionRows

    cond = torch.arange(4 * 3 * 5 * 6, dtype=torch.float64).view(4, 3, 5, 6)
    rows = PositionRows(cond)
    assert len(rows) == 30
    for t in (0, 7, 29):
        assert torch.equal(rows[t], cond[:, :, t // 6, t % 6])


def test_the_format_random_stream_is_pinned():
    """Lossy reconstructions depend on these numbers: they never change."""
    assert uniform24(1, 0, 5).tolist() == [4589884, 15204225, 10087859, 1962462, 8804377]
    assert uniform24(0x6262636F, 1000, 2).tolist() == uniform24(0x6262636F, 999, 3)[1:].tolist()


def test_every_compiled_kernel_has_its_own_cache_entry():
    """numba keys its on-disk cache by function name and line, not by compile flags: two
    dispatchers of one Python function would share (and swap) their compiled code."""
    import numba.core.registry

    from bbcodec.exact import kernels

    dispatchers = [v for v in vars(kernels).values() if isinstance(v, numba.core.registry.CPUDispatcher)]
    keys = [(d.py_func.__qualname__, d.py_func.__code__.co_firstlineno) for d in dispatchers]
    assert len(dispatchers) >= 8 and len(set(keys)) == len(keys), keys


_WARM_THE_CACHE = """
import numpy as np
from bbcodec.exact import kernels, tables
t = tables.load().int
for rows in (300, 10):  # the threaded pixel tables first, then the serial ones
    ones = np.ones((rows, 2), dtype=np.int64)
    kernels.logistic_frequencies(ones << 15, ones * 0, ones, t["pixel_edges"].numpy(), t["sigmoid"].numpy(), 0, 0)
"""
_DECODE_RGB = """
import sys, bbcodec
print(len(bbcodec.decompress(open(sys.argv[1], "rb").read())))
"""


def test_rgb_decodes_in_fresh_processes_whatever_the_kernel_cache_holds(tmp_path):
    """The order that once crashed a fresh decoder: the threaded kernels cached first, then
    one decode that compiles the RGB step, then one that loads it from the cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    golden = GOLDEN / "v2" / "rgb_cifar.bbc"
    for script, args in ((_WARM_THE_CACHE, []), (_DECODE_RGB, [golden]), (_DECODE_RGB, [golden])):
        run = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                             env=env, cwd=HERE.parent, timeout=600)
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
