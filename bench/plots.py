"""PNG plots from benchmark rows: one bar chart of bits/dim per dataset."""

from __future__ import annotations

from pathlib import Path


def rate_bars(rows: list[dict], path: Path) -> Path | None:
    """Achieved bbcodec rates beside the model's bounds and the classical codecs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels, values, colours = [], [], []
    for r in rows:
        if r["kind"] == "classical" and r.get("bits_per_dim") is not None:
            labels.append(r["codec"])
            values.append(r["bits_per_dim"])
            colours.append("#9e9e9e")
        elif r["kind"] != "classical":
            for key, name, colour in (("neg_elbo_bpd", "model −ELBO", "#90caf9"), ("iwae_bpd", "model −IWAE bound (subset)", "#bbdefb"),
                                      ("file_bpd", "bbcodec, one file", "#1565c0"),
                                      ("single_image_bpd", "bbcodec, one image per file", "#64b5f6")):
                if r.get(key) is not None:
                    labels.append(name)
                    values.append(r[key])
                    colours.append(colour)
    order = sorted(range(len(values)), key=lambda i: values[i])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(values) + 1))
    ax.barh([labels[i] for i in order], [values[i] for i in order], color=[colours[i] for i in order])
    for y, i in enumerate(order):
        ax.text(values[i], y, f" {values[i]:.3f}", va="center", fontsize=8)
    ax.set_xlabel("bits per dimension (lower is better)")
    ax.set_title(rows[0]["dataset"])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def kl_per_layer(kl_bits: list[float], model: str, path: Path) -> Path | None:
    """Posterior-collapse check (BIVA fig. 5): bits each latent layer carries per image."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    names = [f"layer {i + 1}" + (" (top)" if i == 0 else "") for i in range(len(kl_bits))]
    ax.bar(names, kl_bits, color="#1565c0")
    for i, v in enumerate(kl_bits):
        ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("KL(q || p), bits per image")
    ax.set_title(f"{model}: information per latent layer (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
