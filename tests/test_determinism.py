"""The determinism matrix: a file decodes bit-exact in a fresh process, with 1 or 2
torch threads, whatever batch partition the encoder used, after a trip through disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bbcodec
from tests.conftest import random_digits

ROOT = Path(__file__).resolve().parents[1]
DECODE = (
    "import sys, torch, numpy as np, bbcodec; torch.set_num_threads(int(sys.argv[3])); "
    "out = bbcodec.decompress(open(sys.argv[1], 'rb').read()); exp = np.load(sys.argv[2]); "
    "sys.exit(0 if len(out) == len(exp) and all((a == b).all() for a, b in zip(out, exp)) else 1)"
)


@pytest.mark.parametrize("encode_threads", [1, 2])
def test_fresh_process_any_threads_any_partition(zoo_env, tmp_path, encode_threads):
    images = random_digits(12, 11)
    np.save(tmp_path / "x.npy", images)
    before = torch.get_num_threads()
    torch.set_num_threads(encode_threads)
    try:
        files = {g: bbcodec.compress(list(images), model="tiny", settings=bbcodec.CoderSettings(max_group=g))
                 for g in (1, 3, 64)}
    finally:
        torch.set_num_threads(before)
    assert len(set(files.values())) >= 2  # different partitions, different (valid) files
    env = {**os.environ, "BBCODEC_MODELS_DIR": str(zoo_env)}
    for g, data in files.items():
        (tmp_path / f"{g}.bbc").write_bytes(data)
        for decode_threads in ("1", "2"):
            subprocess.run([sys.executable, "-c", DECODE, str(tmp_path / f"{g}.bbc"), str(tmp_path / "x.npy"),
                            decode_threads], check=True, cwd=ROOT, env=env)


@pytest.mark.parametrize("lossy_step", [None, 0.5])
def test_autoregressive_model_fresh_process_any_threads(zoo_env, tmp_path, lossy_step):
    """The VLAE path (pixel-by-pixel lockstep decoding, per-dimension AF prior, and the
    lossy reconstruction) computes identical parameters in a fresh process, 1 or 2 threads."""
    images = random_digits(9, 13, size=12)
    files = {g: bbcodec.compress(list(images), model="tiny-vlae", lossy_step=lossy_step,
                                 settings=bbcodec.CoderSettings(max_group=g)) for g in (2, 64)}
    expected = images if lossy_step is None else np.stack(bbcodec.decompress(files[2]))
    np.save(tmp_path / "x.npy", expected)
    env = {**os.environ, "BBCODEC_MODELS_DIR": str(zoo_env)}
    for g, data in files.items():
        (tmp_path / f"{g}.bbc").write_bytes(data)
        for decode_threads in ("1", "2"):
            subprocess.run([sys.executable, "-c", DECODE, str(tmp_path / f"{g}.bbc"), str(tmp_path / "x.npy"),
                            decode_threads], check=True, cwd=ROOT, env=env)


def test_cli_verify_decodes_before_keeping(zoo_env, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from bbcodec.cli import main

    p = tmp_path / "d.png"
    Image.fromarray(random_digits(1, 12)[0]).save(p)
    r = CliRunner().invoke(main, ["encode", str(p), "-o", str(tmp_path / "d.bbc"), "--verify", "--model", "tiny"])
    assert r.exit_code == 0 and (tmp_path / "d.bbc").exists()
