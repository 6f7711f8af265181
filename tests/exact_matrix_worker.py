"""One cell of the kernel-settings matrix (run by test_exactness.py in a subprocess).

    python tests/exact_matrix_worker.py [--flush-denormal] CASE ...

The parent sets the environment (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_*,
thread counts) before this process imports torch. For each golden case it encodes
the inputs and decodes the golden file, and prints one JSON line:
``{case: {"same_bytes": bool, "decodes": bool}}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
V2 = HERE / "golden" / "v2"


def main(argv: list[str]) -> None:
    import torch

    if argv and argv[0] == "--flush-denormal":
        torch.set_flush_denormal(True)
        argv = argv[1:]
    if os.environ.get("BBCODEC_TEST_THREADS"):
        torch.set_num_threads(int(os.environ["BBCODEC_TEST_THREADS"]))
    os.environ["BBCODEC_MODELS_DIR"] = str(HERE / "golden" / "zoo")
    import bbcodec

    manifest = json.loads((V2 / "MANIFEST.json").read_text())
    inputs = np.load(V2 / "inputs.npz")
    report = {}
    for case in argv:
        entry = manifest[case]
        images = list(inputs[entry["input"]])
        golden = (V2 / case).read_bytes()
        data = bbcodec.compress(images, model=entry["model"], **entry["options"])
        try:
            decoded = bbcodec.decompress(golden)
            lossy = "lossy_step" in entry["options"]
            decodes = lossy or all(np.array_equal(a, b) for a, b in zip(decoded, images, strict=True))
        except bbcodec.BBCodecError:
            decodes = False
        report[case] = {"same_bytes": data == golden, "decodes": decodes}
    print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                      "cases": report, "int8_products_exact": int8_products_exact(torch)}))


def int8_products_exact(torch) -> bool:
    """``torch._int_mm`` at the narrow form's bounds (inputs at ±128, weight digits at ±63)
    under this process's kernel settings, against int64 arithmetic."""
    gen = torch.Generator().manual_seed(0)
    ok = True
    for rows, k, cols in ((1, 24, 8), (77, 182, 192), (512, 384, 30)):
        a = torch.where(torch.rand(rows, k, generator=gen) < 0.5, -128, 127).to(torch.int8)
        b = torch.where(torch.rand(k, cols, generator=gen) < 0.5, -63, 63).to(torch.int8)
        ok &= bool(torch.equal(torch._int_mm(a, b).to(torch.int64), a.to(torch.int64) @ b.to(torch.int64)))
    return ok


if __name__ == "__main__":
    main(sys.argv[1:])
