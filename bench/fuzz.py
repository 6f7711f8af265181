"""Fuzz the decoder with hostile .bbc files; every case must end in a BBCodecError or
in the exact original pixels, within a time bound, without a memory blow-up.

    python -m bench.fuzz --cases 5000            # tiny random model (fast)
    python -m bench.fuzz --cases 500 --model mnist-int8-w7

Mutations: truncation, bit flips anywhere, byte edits with the file CRC recomputed
(so they reach the header parser and the ANS decoder), varint field edits, random
bytes behind a valid magic, empty input. Prints counts of each outcome; exit code 1
if any case crashed (non-BBCodecError), hung, or returned wrong pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "edit+crc", "varint+crc", "random", "empty"], p=[.2, .25, .3, .15, .08, .02])
    b = bytearray(data)
    if kind == "truncate":
        return kind, bytes(b[: rng.integers(0, len(b))])
    if kind == "flip":
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(0, len(b))
            b[i] ^= 1 << int(rng.integers(0, 8))
        return kind, bytes(b)
    if kind in ("edit+crc", "varint+crc"):
        body = b[:-4]
        limit = 40 if kind == "varint+crc" else len(body)  # header region vs anywhere
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(4, min(limit, len(body))))
            body[i] = int(rng.integers(0, 256)) if kind == "edit+crc" else int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
        return kind, bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "little")
    if kind == "random":
        body = b"BBC\x01" + rng.integers(0, 256, rng.integers(0, 300)).astype(np.uint8).tobytes()
        return kind, body + zlib.crc32(body).to_bytes(4, "little")
    return kind, b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--model", default="tiny", help="'tiny' (random, fast) or a shipped model name")
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound per case")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address-space cap for this process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cap = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    tmp = tempfile.mkdtemp()
    if args.model == "tiny":
        from tests.conftest import TINY_CONFIG, make_tiny, write_zoo_model

        write_zoo_model(Path(tmp), "tiny", make_tiny(TINY_CONFIG, 0))
        os.environ["BBCODEC_MODELS_DIR"] = tmp
    import bbcodec
    from bbcodec.data import load_mnist

    images = list(load_mnist("test")[0][:5])
    originals = {1: images[:1], 5: images}
    files = {n: bbcodec.compress(imgs, model=args.model, names=[f"{i}.png" for i in range(n)])
             for n, imgs in originals.items()}
    rng = np.random.default_rng(args.seed)
    outcomes: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    worst = 0.0
    signal.signal(signal.SIGALRM, _alarm)
    for _ in range(args.cases):
        n = int(rng.choice([1, 5]))
        kind, data = mutate(files[n], rng)
        t = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, args.seconds)
        try:
            out = bbcodec.decompress(data)
            exact = len(out) == n and all(np.array_equal(a, b) for a, b in zip(out, originals[n]))
            result = "decoded exactly" if exact else "WRONG OUTPUT"
        except bbcodec.BBCodecError as exc:
            result = f"refused: {type(exc).__name__}"
        except Hang:
            result = "HANG"
        except Exception as exc:  # noqa: BLE001 - the point is to count these
            result = f"CRASH: {type(exc).__name__}: {exc}"[:120]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        worst = max(worst, time.perf_counter() - t)
        outcomes[result] = outcomes.get(result, 0) + 1
        by_kind.setdefault(kind, {}).setdefault(result, 0)
        by_kind[kind][result] += 1
    bad = sum(v for k, v in outcomes.items() if k.startswith(("CRASH", "HANG", "WRONG")))
    report = {"cases": args.cases, "model": args.model, "outcomes": outcomes, "by_mutation": by_kind,
              "slowest_case_s": round(worst, 3), "crashes_hangs_wrong": bad,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(report, indent=1))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
