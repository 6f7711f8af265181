"""PNG plots from benchmark rows (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def rate_bars(rows: list[dict], path: Path, reported: list[dict] = ()) -> Path | None:
    """Achieved bbcodec rates beside the models' bounds, the papers' numbers and classical codecs.

    ``rows`` are one dataset's rows; ``reported`` the papers' bits/dim rows for it.
    """
    plt = _pyplot()
    if plt is None or not rows:
        return None
    labels, values, colours = [], [], []
    for r in rows:
        if r["kind"] == "classical" and r.get("bits_per_dim") is not None:
            labels.append(r["codec"])
            values.append(r["bits_per_dim"])
            colours.append("#9e9e9e")
        elif r["kind"] == "bbcodec lossless":
            for key, name, colour in (("neg_elbo_bpd", "−ELBO", "#90caf9"), ("iwae_bpd", "−IWAE bound (subset)", "#bbdefb"),
                                      ("file_bpd", "bbcodec, one file", "#1565c0"),
                                      ("single_image_bpd", "bbcodec, one image per file", "#64b5f6")):
                if r.get(key) is not None:
                    labels.append(f"{r['model']}: {name}")
                    values.append(r[key])
                    colours.append(colour)
    for r in reported:
        labels.append(f"{r['system']} ({'codec' if r['kind'] == 'codec' else r.get('bound', 'NLL')}, paper)"
                      + ("" if r.get("verified") else " *"))
        values.append(r["value"])
        colours.append("#ffb74d" if r["kind"] == "codec" else "#ffe0b2")
    order = sorted(range(len(values)), key=lambda i: values[i])
    fig, ax = plt.subplots(figsize=(11, 0.4 * len(values) + 1.2))
    ax.barh([labels[i] for i in order], [values[i] for i in order], color=[colours[i] for i in order])
    for y, i in enumerate(order):
        ax.text(values[i], y, f" {values[i]:.3f}", va="center", fontsize=8)
    ax.set_xlabel("bits per dimension (lower is better)" + ("; * not verified" if any(
        not r.get("verified") for r in reported) else ""))
    ax.set_title(rows[0]["dataset"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def kl_per_layer(kl_bits: list[float], model: str, path: Path, names: list[str]) -> Path | None:
    """Posterior-collapse check (BIVA fig. 5): bits each latent part carries per image."""
    plt = _pyplot()
    if plt is None or not kl_bits or len(names) != len(kl_bits):
        return None
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(kl_bits), 1.3 * len(kl_bits) if len(kl_bits) < 8 else 0), 3.2))
    ax.bar([n.replace(" (", "\n(") if len(kl_bits) <= 8 else n for n in names], kl_bits, color="#1565c0")
    for i, v in enumerate(kl_bits):
        ax.text(i, v, f"{v:.1f}" if v >= 1 else f"{v:.2f}", ha="center", va="bottom", fontsize=8 if len(kl_bits) < 12 else 6)
    if len(kl_bits) > 8:
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    else:
        ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("KL(q || p), bits per image")
    ax.set_title(f"{model}: information per latent layer (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def lossy_tradeoff(rows: list[dict], path: Path) -> Path | None:
    """Bits per image against label agreement and PSNR, one point per lossy setting."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "label_agreement", "label agreement with the original"),
                           (axes[1], "psnr_db", "PSNR (dB)")):
        ours = [r for r in rows if r.get("model")]
        for draws in sorted({r.get("draws", 1) for r in ours}):
            line = [r for r in ours if r.get("draws", 1) == draws]
            ax.plot([r["bits_per_image"] for r in line], [r[key] for r in line], "o-",
                    label="bbcodec latent only" + (f", mean of {draws} draws" if draws > 1 else ", one draw"))
        for r in ours:
            ax.annotate(f"step {r['step']:g}", (r["bits_per_image"], r[key]), fontsize=7,
                        textcoords="offset points", xytext=(4, -8))
        for r in rows:
            if not r.get("model"):
                ax.plot(r["bits_per_image"], r[key], "s", label=r["codec"])
        ax.set_xscale("log")
        ax.set_xlabel("bits per image (log scale)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(rows[0]["dataset"] + ": lossy rate against fidelity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def image_grid(grids: dict[str, np.ndarray], path: Path) -> Path | None:
    """One strip of images per entry (originals first), titled by the entry's name.

    Each strip is pasted into one array with a 2-pixel gap and shown at its own
    resolution, so small images (28x28 digits) stay large and close together.
    """
    plt = _pyplot()
    if plt is None or not grids:
        return None
    cols = max(len(v) for v in grids.values())
    strips = []
    for images in grids.values():
        images = np.asarray(images)
        scale = 255 if images.max() > 1 else 1
        h, w = images.shape[1:3]
        strip = np.full((h, cols * (w + 2) - 2, *images.shape[3:]), 255, dtype=np.uint8)
        for c, img in enumerate(images):
            strip[:, c * (w + 2) : c * (w + 2) + w] = (img.astype(np.float64) * (255 / scale)).astype(np.uint8)
        strips.append(strip)
    width_in = min(14.0, max(6.0, strips[0].shape[1] / 40))
    row_in = width_in * strips[0].shape[0] / strips[0].shape[1] + 0.3
    fig, axes = plt.subplots(len(strips), 1, figsize=(width_in, row_in * len(strips)), squeeze=False)
    for ax, title, strip in zip(axes[:, 0], grids, strips):
        ax.imshow(strip, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, loc="left", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
