"""The ``bbcodec`` command: a thin click layer over the public API.

Exit codes: :data:`bbcodec.errors.EXIT_CODES` (``bbcodec --help`` lists them).
Outputs are written atomically and never overwrite an existing file unless
``--force`` is given.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

import bbcodec
from bbcodec import runtime, zoo
from bbcodec.errors import EXIT_CODES, EXIT_INTERRUPTED, BBCodecError, OutputError
from bbcodec.images import png_bytes, read_image
from bbcodec.lossy import DEFAULT_DRAWS, DEFAULT_STEP

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes, force: bool) -> None:
    """Write via a temp file in the same folder and rename: no partial file, ever."""
    if path.exists() and not force:
        raise OutputError(f"{path} exists; pass --force to overwrite it")
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bbc-", suffix=".partial")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide outputs from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _write_output(target: str, data: bytes, force: bool) -> None:
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write(Path(target), data, force)


def _read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise BBCodecError(f"cannot read {source}: {exc.strerror or exc}") from exc


@contextmanager
def _progress(total: int, label: str, enabled: bool) -> Iterator:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="img", disable=not enabled, file=sys.stderr, leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


def _fail(exc: BBCodecError) -> None:
    click.echo(f"bbcodec: error: {exc}", err=True)
    sys.exit(exc.exit_code)


class _Group(click.Group):
    """Turns bbcodec errors and Ctrl-C into one-line messages with documented exit codes."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except BBCodecError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("bbcodec: interrupted; no output was written", err=True)
            sys.exit(EXIT_INTERRUPTED)


_EXIT_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in sorted(EXIT_CODES.items()))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EXIT_HELP)
@click.version_option(bbcodec.__version__, prog_name="bbcodec")
def main() -> None:
    """Lossless image compression with bits-back coding on trained latent-variable models.

    \b
    Typical use:
      bbcodec encode digit.png -o digit.bbc       compress one image
      bbcodec encode *.png -o all.bbc             several images share one bits-back chain
      bbcodec decode all.bbc -o out/              restore them (original names) as PNG
      bbcodec info all.bbc                        rate and overheads, without decoding
      bbcodec models                              shipped models and their test rates

    Rates are in bits per dimension (bits/dim): file bits / (height x width x channels).
    """
    runtime.reuse_freed_memory()  # a command exits after coding: keep freed memory for the next layer


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="The .bbc file to write ('-' for stdout).")
@click.option("--model", default=None, help="Model name (see `bbcodec models`); default: the shipped model for the images' mode.")
@click.option("--fast", is_flag=True,
              help=f"Code 28x28 grayscale with the fast preset ({zoo.FAST_PRESET}): several times faster "
                   "each way, a higher rate (`bbcodec models` lists rate and speed of both).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--verify", is_flag=True, help="Decode in-process and compare before writing (twice the time).")
@click.option("--no-names", is_flag=True, help="Do not store file names (saves a few bytes per image).")
@click.option("--lossy", is_flag=True,
              help="Send only the latent code (a few bytes per image); decoding returns the model's "
                   "reconstruction, not the original pixels. Needs a model with a global latent "
                   f"(default {zoo.LOSSY_PREFERENCE[0]}; the README's lossy table gives its bits per digit "
                   "and how many test digits keep their label).")
@click.option("--lossy-step", type=click.FloatRange(1 / 64, 16), default=None, metavar="STEP",
              help="Rate knob of --lossy: latent quantisation step in prior standard deviations "
                   "(default 1.0; larger = fewer bits, coarser). Implies --lossy.")
@click.option("--lossy-draws", type=click.IntRange(1, 256), default=None, metavar="S",
              help="Fidelity knob of --lossy, free in bits: show the mean of S seeded draws from the "
                   "model instead of one draw, for S times the decoding work (default 4: on validation digits "
                   "it keeps about as many labels as 16 draws; fewer keep fewer). Implies --lossy.")
@click.option("--samples", type=click.IntRange(1, 256), default=1, show_default=True, metavar="K",
              help="Importance samples per image: the rate falls from the model's -ELBO towards its "
                   "tighter IWAE bound -L_K (K=8: about 1.5% smaller on MNIST) for about K times the "
                   "latent work when encoding and decoding.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def encode(images: tuple[str, ...], output: str, model: str | None, fast: bool, force: bool, verify: bool,
           no_names: bool, lossy: bool, lossy_step: float | None, lossy_draws: int | None, samples: int,
           as_json: bool) -> None:
    """Compress IMAGE files (PNG, PGM, BMP, TIFF, WebP, JPEG pixels; '-' = stdin) into one .bbc file.

    Every pixel comes back exactly. Images are coded in one bits-back chain, so a file
    of many images costs close to the model's -ELBO per image. The first image sends
    its latents quantised instead of borrowing bits to start the chain (the
    "anchor"), so even a single image costs little more than the model's -ELBO.

    With --lossy only the latent code is stored and decoding shows what the model
    rebuilds from it.
    """
    if fast:
        if model is not None:
            raise click.UsageError("--fast names a model already; pass --fast or --model, not both")
        model = zoo.FAST_PRESET
    if (lossy or lossy_draws) and lossy_step is None:
        lossy_step = DEFAULT_STEP
    if output != "-" and Path(output).exists() and not force:
        raise OutputError(f"{output} exists; pass --force to overwrite it")
    arrays = [read_image(_read_input(p) if p == "-" else p) for p in images]
    # File names may hold undecodable bytes (surrogate escapes); store them readably.
    names = None if no_names else [
        (Path(p).name if p != "-" else "stdin").encode("utf-8", "replace").decode("utf-8").replace("\0", "")[:255]
        for p in images
    ]
    with _progress(len(arrays), "encoding", len(arrays) > 1 and output != "-") as tick:
        data = bbcodec.compress(arrays, model=model, names=names, progress=tick, lossy_step=lossy_step,
                                samples=samples, lossy_draws=lossy_draws or DEFAULT_DRAWS)
    if verify:
        decoded = bbcodec.decompress(data)  # a lossy file renders its picture and checks its latents' CRC
        if lossy_step is None and any(a.shape != b.shape or (a != b).any() for a, b in zip(arrays, decoded)):
            raise bbcodec.DecodeMismatchError("verification failed: the file would not decode exactly; nothing written")
    _write_output(output, data, force)
    summary = bbcodec.inspect(data).to_dict()
    summary.pop("names", None)
    summary.pop("shapes", None)
    if as_json:
        click.echo(json.dumps(summary))
    elif output != "-":
        click.echo(f"{output}: {summary['n_images']} image(s), {summary['total_bytes']} bytes, "
                   f"{summary['bits_per_dim']:.3f} bits/dim", err=True)


def _safe_names(names: list[str] | None, count: int) -> list[str]:
    """Output file names: stored base names (never a path), printable, short, .png, unique."""
    out, seen = [], set()
    for i in range(count):
        base = Path(names[i].replace("\\", "/")).name if names else ""
        stem = "".join(ch for ch in Path(base).stem if ch.isprintable() and ch not in '<>:"|?*')[:120]
        if stem in ("", ".", ".."):
            stem = f"image_{i:05d}"
        candidate, k = f"{stem}.png", 1
        while candidate in seen:
            candidate, k = f"{stem}_{k}.png", k + 1
        seen.add(candidate)
        out.append(candidate)
    return out


@main.command()
@click.argument("source")
@click.option("-o", "--output", required=True,
              help="One image: the PNG to write ('-' = stdout). Several: a directory for them.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def decode(source: str, output: str, force: bool) -> None:
    """Decompress SOURCE (a .bbc file, '-' = stdin) back to PNG images, bit-exact.

    Decoding verifies the stored checksum of the original pixels and fails
    (exit code 5) rather than writing a single wrong pixel. A lossy file (see
    `bbcodec info`) decodes to the model's reconstruction, checked the same way.
    """
    data = _read_input(source)
    n = bbcodec.inspect(data).coding_units  # images, or tiles of large images
    with _progress(n, "decoding", n > 1) as tick:
        images = bbcodec.decompress(data, progress=tick)
    header_names = bbcodec.inspect(data).names
    if len(images) == 1 and not (output != "-" and Path(output).is_dir()):
        _write_output(output, png_bytes(images[0]), force)
        return
    if output == "-":
        raise OutputError("this file holds several images: give a directory with -o")
    directory = Path(output)
    names = _safe_names(header_names, len(images))
    clashes = [name for name in names if (directory / name).exists()]
    if clashes and not force:
        raise OutputError(f"{directory / clashes[0]} exists; pass --force to overwrite")
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory} is a file; several images need a directory")
    written: list[Path] = []
    try:
        for name, image in zip(names, images):
            atomic_write(directory / name, png_bytes(image), force=True)
            written.append(directory / name)
    except BaseException:
        for path in written:  # all or nothing
            path.unlink(missing_ok=True)
        raise
    click.echo(f"{len(images)} images written to {directory}", err=True)


@main.command()
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys include bits_per_dim, n_images).")
def info(source: str, as_json: bool) -> None:
    """Describe a .bbc file without decoding it: model, images, rate and overheads.

    \b
    bits_per_dim   whole file size x 8 / (sum of H x W x C): what you pay on disk
    header_bytes   format overhead (magic, model id, shapes, partition, CRCs, names)
    initial_bits   bits the chain borrowed to start and cannot return (first image)
    """
    result = bbcodec.inspect(_read_input(source))
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    shapes = sorted({f"{h}x{w}x{c}" for h, w, c in result.shapes})
    draws = f", mean of {result.lossy_draws} draws" if result.lossy_draws > 1 else ""
    lossy = f" (LOSSY: latent code only, step {result.lossy_step:g}{draws})" if result.lossy else ""
    click.echo(f"model:         {result.model}{lossy}")
    click.echo(f"images:        {result.n_images} ({', '.join(shapes)})")
    click.echo(f"size:          {result.total_bytes} bytes ({result.bits_per_dim:.4f} bits/dim)")
    click.echo(f"header:        {result.header_bytes} bytes")
    click.echo(f"initial bits:  {result.initial_bits}")
    click.echo("coding:        " + ("exact integer (decodes on every machine)" if not result.machine_bound else
                                    f"MACHINE-BOUND float model ({result.machine_bound}): decodes only where it "
                                    "computes alike"))
    if result.samples > 1:
        warmup = f" (after {result.plain_groups} plain warm-up groups)" if result.plain_groups else ""
        click.echo(f"importance:    {result.samples} samples per image{warmup}")
    if result.tile:
        click.echo(f"tiles:         {result.coding_units} coding units ({result.tile}x{result.tile} tiles)")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json: bool) -> None:
    """List the shipped models with their test -ELBO: the integer coding form's (what files
    pay), and the float model's beside it (models/NAME/scores.json); and their measured
    coding speed, images/s each way in one process (models/NAME/speed.json, from
    `python -m bench.speed`; the CPU and core count it ran on are in --json)."""
    rows = [
        {"name": m.name, "arch": m.arch, "channels": m.image_channels, "test_bpd": m.test_bpd,
         "float_test_bpd": m.float_test_bpd, "speed": m.speed,
         "sha256": m.sha256[:16], "path": str(m.path)}
        for m in bbcodec.list_models()
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no models installed")
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        rate = "unscored"
        if r["test_bpd"] is not None:
            rate = f"{r['test_bpd']:.4f} bits/dim test -ELBO (float model {r['float_test_bpd']:.4f})"
        kind = "grayscale" if r["channels"] == 1 else "RGB"
        speed = r["speed"]
        pace = ("" if speed is None else
                f"; {speed['encode_img_per_s']:.0f} / {speed['decode_img_per_s']:.0f} img/s encode / decode")
        click.echo(f"{r['name']:<{width}}  {r['arch']:<6} {kind:<9} {rate}{pace}")


if __name__ == "__main__":
    main()
