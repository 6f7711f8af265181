"""Train a shipped model from its recipe; resumable, and unchanged under torchrun.

    python training/train.py models/mnist/recipe.json            # 1 process
    torchrun --nproc_per_node 2 training/train.py models/mnist/recipe.json   # DDP

Each process trains on its own shard of every batch (DDP averages gradients: gloo
on CPU, NCCL on GPUs), so the global batch stays ``batch_size``. Rank 0 writes a
checkpoint every ``checkpoint_minutes`` (atomically, keeping the previous one to
roll back to), a JSON-lines log, and on ``--export`` the EMA weights as safetensors.

Stability rules learned here (DESIGN.md §7): bf16 autocast except likelihood heads,
gradient clipping, a skip rule whose threshold follows *all* recent gradient norms
(not only accepted steps, or it gets stuck), free bits early on, EMA for evaluation,
and an automatic rollback to the last checkpoint when the loss goes non-finite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bbcodec.data import BINARIZED_TEST_SEED, binarize, cache_dir, load_mnist
from bbcodec.nn import build_model
from bbcodec.nn.fake_quant import SiluCodes
from bbcodec.nn.vlae import QUANTISATION_FIELDS
from bbcodec.nn.objective import LN2, ElboTerms, elbo_terms
from bbcodec.weights import file_sha256, load_weights, save_weights


CALIBRATION_IMAGES = 512  # training images that start quantisation-aware code ranges
CODE_RANGE_KEY = "codes.top"  # the only parameters a quantisation-aware phase adds to its float start


def _float_config(config: dict) -> dict:
    """A config without its quantisation-aware training settings: the architecture."""
    return {k: v for k, v in config.items() if k not in QUANTISATION_FIELDS}


PRECISION_BF16 = "bf16 autocast with fp32 distribution parameters"
PRECISION_FP32 = "fp32"


def load_recipe(path: Path) -> dict:
    recipe = json.loads(path.read_text())
    recipe.setdefault("batch_size", 64)
    recipe.setdefault("lr", 2e-3)
    recipe.setdefault("warmup_steps", 500)
    recipe.setdefault("epochs", 40)
    recipe.setdefault("grad_clip", 200.0)
    recipe.setdefault("skip_factor", 10.0)
    recipe.setdefault("ema", 0.999)
    recipe.setdefault("free_bits_nats", 0.05)  # per latent channel
    recipe.setdefault("free_bits_epochs", 3)
    recipe.setdefault("kl_warmup_steps", 2000)
    # < 1 trades likelihood for a more informative latent (a lossy-mode model that
    # sends only z needs z to carry the image); 1 trains the ELBO the coder pays.
    recipe.setdefault("kl_weight", 1.0)
    recipe.setdefault("eval_images", 2000)
    recipe.setdefault("checkpoint_minutes", 5.0)
    recipe.setdefault("bf16", False)  # no bf16 units on this AVX2 CPU: 20x slower, measured
    recipe.setdefault("seed", 0)
    return recipe


def dataset(recipe: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Training images (8-bit; binarised per batch when the recipe says so) and test images."""
    if recipe["dataset"] == "rgb-patches":
        return rgb_patches(rgb_set_names(recipe))
    if recipe["dataset"] not in ("mnist", "mnist-binary"):
        raise SystemExit(f"unknown dataset {recipe['dataset']!r}")
    train, _ = load_mnist("train")
    test, _ = load_mnist("test")
    if recipe["dataset"] == "mnist-binary":
        test = binarize(test, seed=BINARIZED_TEST_SEED)  # the fixed test set every report uses
    return torch.from_numpy(train.copy()).unsqueeze(1), torch.from_numpy(test.copy()).unsqueeze(1)


RGB_SETS = {  # set name -> (train file, val file, the script that makes it)
    "patches": ("patches_train.npy", "patches_val.npy", "training/rgb/prepare_data.py"),
    "coarse": ("patches_coarse_train.npy", "patches_coarse_val.npy", "training/rgb/coarse_patches.py"),
    "thumbnails": ("thumbs_train.npy", "thumbs_val.npy", "training/rgb/thumbnails.py"),
}


def rgb_set_names(recipe: dict) -> list[str]:
    """The photo-derived sets a recipe trains on (older recipes say ``coarse_patches``)."""
    if "rgb_sets" in recipe:
        return list(recipe["rgb_sets"])
    return ["patches", "coarse"] if recipe.get("coarse_patches") else ["patches"]


def rgb_patches(sets: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """32x32 images cut from real photographs (train / held-out photos; models/rgb/DATA.md):
    close-up windows, coarse-scale windows, whole-scene thumbnails. The chosen sets are
    mixed with a fixed permutation."""
    folder = cache_dir() / "rgb"
    out = []
    for split in (0, 1):
        paths = [(folder / RGB_SETS[name][split], RGB_SETS[name][2]) for name in sets]
        for path, script in paths:
            if not path.exists():
                raise SystemExit(f"{path} is missing: run {script} first (after training/rgb/prepare_data.py)")
        arr = np.concatenate([np.load(path) for path, _ in paths])
        arr = arr[np.random.default_rng(split).permutation(len(arr))]
        out.append(torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous())
    return out[0], out[1]


def training_batch(recipe: dict, images: torch.Tensor) -> torch.Tensor:
    """Dynamic binarisation (a fresh Bernoulli draw every time an image is seen) and
    random horizontal flips, when the recipe asks for them."""
    if recipe["dataset"] == "mnist-binary":
        images = (torch.rand(images.shape) * 255.0 < images.float()).to(torch.uint8)
    if recipe.get("flip"):
        flip = torch.rand(len(images)) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
    return images


def free_bits_kl(kls: list[torch.Tensor], nats: float) -> torch.Tensor:
    """KL with a floor per layer *channel*, averaged over the batch (Kingma et al. 2016)."""
    total = 0.0
    for kl in kls:
        per_channel = kl.sum(dim=(2, 3)).mean(0)  # (C,)
        total = total + torch.clamp(per_channel, min=nats).sum()
    return total


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, batch: int = 500) -> dict:
    """Test −ELBO in bits/dim and KL per layer (bits per image), fp32 like the coder."""
    model.eval()
    total, kl_totals = 0.0, None
    for start in range(0, len(images), batch):
        terms = elbo_terms(model, images[start : start + batch])
        total += terms.negative_elbo().sum().item()
        layer_kls = [kl.flatten(1).sum(1).sum().item() for kl in terms.kl_per_layer]
        kl_totals = layer_kls if kl_totals is None else [a + b for a, b in zip(kl_totals, layer_kls)]
    model.train()
    dims = images[0].numel()
    return {
        "test_bpd": total / len(images) / dims / LN2,
        "kl_bits_per_layer": [k / len(images) / LN2 for k in kl_totals],
    }


class Trainer:
    def __init__(self, recipe_path: Path) -> None:
        self.recipe_path = recipe_path
        self.recipe = load_recipe(recipe_path)
        self.out_dir = recipe_path.parent
        self.ckpt_dir = self.out_dir / "ckpt"
        self.distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
        if self.distributed:
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        torch.manual_seed(self.recipe["seed"] + self.rank)
        self.model = build_model(self.recipe["arch"], self.recipe["config"]).to(memory_format=torch.channels_last)
        self.ema = build_model(self.recipe["arch"], self.recipe["config"])
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)
        self.opt = torch.optim.Adamax(self.model.parameters(), lr=self.recipe["lr"])
        self.step, self.epoch, self.best_bpd = 0, 0, math.inf
        self.grad_norms: deque[float] = deque(maxlen=200)
        self.log({"event": "started", "precision": PRECISION_BF16 if self.recipe["bf16"] else PRECISION_FP32,
                  "processes": self.world})
        self.resume()
        if self.step == 0 and self.recipe.get("init_from"):
            self.initialise(Path(self.recipe["init_from"]))
        self.wrapped = DistributedDataParallel(self.model) if self.distributed else self.model

    # --- checkpoints -------------------------------------------------------------
    def state(self) -> dict:
        return {
            "recipe": self.recipe,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "best_bpd": self.best_bpd,
            "grad_norms": list(self.grad_norms),
        }

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        last, prev, tmp = (self.ckpt_dir / n for n in ("last.pt", "prev.pt", "tmp.pt"))
        torch.save(self.state(), tmp)
        if last.exists():
            last.replace(prev)
        tmp.replace(last)

    def resume(self, path: Path | None = None) -> None:
        path = path or self.ckpt_dir / "last.pt"
        if not path.exists():
            return
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.step, self.epoch, self.best_bpd = state["step"], state["epoch"], state["best_bpd"]
        self.grad_norms.extend(state["grad_norms"])
        self.log({"event": "resumed", "from": str(path), "step": self.step, "epoch": self.epoch})

    def initialise(self, path: Path) -> None:
        """Start a new run (fresh optimiser, warm-up and cosine) from trained weights:
        how a model gets a further training phase with different data or free bits
        without pretending the old schedule never ended.

        The recipe's ``init_fresh`` (parameter-name prefixes, e.g. ``["local.",
        "cond_high."]``) lets a model of another size start from a trained one: those
        parameters keep their fresh initialisation and may differ in shape, every other
        one is loaded and must match by name and shape (a smaller per-pixel network
        under a trained encoder, prior and conditioning network)."""
        source = path if path.is_absolute() else Path(__file__).resolve().parents[1] / path
        trained, meta = load_weights(source)
        fresh = tuple(self.recipe.get("init_fresh", ()))
        same_model = _float_config(meta["config"]) == _float_config(self.recipe["config"])
        if meta["arch"] != self.recipe["arch"] or not (same_model or fresh):
            raise SystemExit(f"{path} holds a different model than {self.recipe_path} describes")
        ours = self.model.state_dict()
        loaded = {k: v for k, v in trained.state_dict().items() if not k.startswith(fresh)}
        misfits = sorted(k for k, v in loaded.items() if k not in ours or ours[k].shape != v.shape)
        missing, unexpected = self.model.load_state_dict({k: v for k, v in loaded.items() if k not in misfits},
                                                         strict=False)
        missing = [k for k in missing if not k.startswith(fresh) and not k.endswith(CODE_RANGE_KEY)]
        if misfits or missing or unexpected:
            raise SystemExit(f"{path} does not fit {self.recipe_path}: different shape {misfits}, "
                             f"missing {missing}, unexpected {unexpected}")
        self.ema.load_state_dict(self.model.state_dict())
        self.log({"event": "initialised", "from": str(path), "sha256": file_sha256(source),
                  "its_test_bpd": meta.get("test_bpd"), **({"fresh": list(fresh)} if fresh else {})})

    def calibrate(self, train: torch.Tensor) -> None:
        """Start quantisation-aware training's code ranges from training images, once
        (a resumed run has them in its checkpoint)."""
        codes = [m for m in self.model.modules() if isinstance(m, SiluCodes)]
        if not codes or all(c.calibrated for c in codes):
            return
        self.model.calibrate_codes(training_batch(self.recipe, train[:CALIBRATION_IMAGES]))
        self.ema.load_state_dict(self.model.state_dict())
        self.log({"event": "calibrated", "images": CALIBRATION_IMAGES,
                  "code_tops": [round(float(t), 4) for c in codes for t in c.top.tolist()]})

    def log(self, record: dict) -> None:
        if self.rank != 0:
            return
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
        with open(self.out_dir / "train_log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)

    # --- one step --------------------------------------------------------------
    def lr_at(self, step: int, total: int) -> float:
        base = self.recipe["lr"]
        if step < self.recipe["warmup_steps"]:
            return base * (step + 1) / self.recipe["warmup_steps"]
        progress = min(1.0, step / max(1, total))
        return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def train_step(self, x: torch.Tensor, total_steps: int) -> dict | None:
        r = self.recipe
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if r["bf16"] else contextlib.nullcontext()
        with autocast:
            nll_per_image, kl_per_layer = self.wrapped(x)
        terms = ElboTerms(nll_per_image, list(kl_per_layer))
        dims = x[0].numel()
        nll = terms.nll.mean()
        free_bits = r["free_bits_nats"] if self.epoch < r["free_bits_epochs"] else 0.0
        kl = free_bits_kl(terms.kl_per_layer, free_bits)
        beta = r["kl_weight"] * min(1.0, (self.step + 1) / r["kl_warmup_steps"])
        loss = (nll + beta * kl) / dims
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), r["grad_clip"]).item()
        warm = self.step >= r["warmup_steps"] and len(self.grad_norms) >= 100
        threshold = r["skip_factor"] * float(np.median(self.grad_norms)) if warm else math.inf
        self.grad_norms.append(norm if math.isfinite(norm) else 1e9)
        if not math.isfinite(norm) or not math.isfinite(loss.item()) or norm > threshold:
            return {"skipped": True, "grad_norm": norm}
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step, total_steps)
        self.opt.step()
        with torch.no_grad():
            decay = min(r["ema"], (1 + self.step) / (10 + self.step))
            for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(pm, 1 - decay)
        neg_elbo = terms.negative_elbo().mean().item()
        return {"loss": loss.item(), "bpd": neg_elbo / dims / LN2, "grad_norm": norm}

    # --- the loop --------------------------------------------------------------
    def train(self, minutes: float | None) -> None:
        r = self.recipe
        train, test = dataset(r)
        eval_set = test[: r["eval_images"]]
        per_rank = r["batch_size"] // self.world
        steps_per_epoch = len(train) // r["batch_size"]
        total_steps = steps_per_epoch * r["epochs"]
        deadline = time.time() + minutes * 60 if minutes else math.inf
        self.calibrate(train)
        last_ckpt = time.time()
        self.model.train()
        while self.epoch < r["epochs"] and time.time() < deadline:
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(r["seed"] + self.epoch))
            first = self.step - self.epoch * steps_per_epoch
            window, skipped, t0 = [], 0, time.time()
            for i in range(max(0, first), steps_per_epoch):
                batch = order[i * r["batch_size"] : (i + 1) * r["batch_size"]]
                x = training_batch(r, train[batch[self.rank * per_rank : (self.rank + 1) * per_rank]])
                x = x.contiguous(memory_format=torch.channels_last)  # +20% on CPU, measured
                out = self.train_step(x, total_steps)
                if out.get("skipped"):
                    skipped += 1
                    if not math.isfinite(out["grad_norm"]) and skipped > 20:
                        self.rollback("non-finite gradients")
                        return self.train(minutes and (deadline - time.time()) / 60)
                    continue
                self.step += 1
                window.append(out["bpd"])
                if self.step % 100 == 0:
                    self.log({"step": self.step, "epoch": self.epoch, "train_bpd": float(np.mean(window)),
                              "grad_norm": out["grad_norm"], "skipped": skipped,
                              "img_per_s": len(window) * r["batch_size"] / (time.time() - t0)})
                    window, t0 = [], time.time()
                if time.time() - last_ckpt > r["checkpoint_minutes"] * 60:
                    self.save_checkpoint()
                    last_ckpt = time.time()
                if time.time() > deadline:
                    break
            else:
                self.epoch += 1
                metrics = evaluate(self.ema, eval_set)
                if not math.isfinite(metrics["test_bpd"]):
                    self.rollback("non-finite test bpd")
                    continue
                self.best_bpd = min(self.best_bpd, metrics["test_bpd"])
                self.log({"event": "epoch", "epoch": self.epoch, "step": self.step, **metrics})
                self.save_checkpoint()
                last_ckpt = time.time()
        self.save_checkpoint()

    def rollback(self, why: str) -> None:
        prev = self.ckpt_dir / "prev.pt"
        self.log({"event": "rollback", "why": why})
        self.resume(prev if prev.exists() else None)

    def export(self) -> None:
        """Write EMA weights + config for the zoo, evaluated on the whole test set."""
        if self.rank != 0:
            return
        _, test = dataset(self.recipe)
        metrics = evaluate(self.ema, test)
        meta = {"arch": self.recipe["arch"], "config": self.recipe["config"], "epoch": self.epoch,
                "step": self.step, "test_bpd": metrics["test_bpd"],
                "kl_bits_per_layer": metrics["kl_bits_per_layer"]}
        save_weights(self.ema, self.out_dir / "weights.safetensors", meta)
        self.log({"event": "export", **meta})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path, help="models/<name>/recipe.json")
    parser.add_argument("--minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    parser.add_argument("--export", action="store_true", help="only export EMA weights from the last checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = Trainer(args.recipe)
    if not args.export:
        trainer.train(args.minutes)
    trainer.export()
    if trainer.distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
