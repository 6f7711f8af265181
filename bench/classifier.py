"""A small MNIST classifier: the judge of whether a lossy reconstruction kept the digit.

Label agreement (the classifier's label on the original equals its label on the
reconstruction) is what "the global code keeps what matters" means for digits.
The classifier is trained here, deterministically, on MNIST train only, and its
weights are committed next to this file so every benchmark run uses the same judge:

    python -m bench.classifier            # trains (about 2 minutes on 2 cores), writes weights

Architecture: two 3x3 conv layers (32, 64 channels) with max-pooling, then a
128-unit hidden layer; dropout while training. Typical accuracy is about 99%.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bbcodec.data import load_mnist

WEIGHTS = Path(__file__).resolve().parent / "classifier.safetensors"


class DigitClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for uint8 images (N, 28, 28)."""
        h = x.float().unsqueeze(1) / 255.0
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.dropout(F.relu(self.fc1(h.flatten(1))), 0.3, self.training)
        return self.fc2(h)


@torch.no_grad()
def predict(model: DigitClassifier, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(images))
    return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)]).numpy()


def train(epochs: int = 3, seed: int = 0) -> tuple[DigitClassifier, float]:
    torch.manual_seed(seed)
    images, labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(128):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    accuracy = float((predict(model, test_images) == test_labels).mean())
    return model, accuracy


def load() -> DigitClassifier:
    """The committed judge (train it with ``python -m bench.classifier`` if missing)."""
    if not WEIGHTS.exists():
        raise FileNotFoundError(f"{WEIGHTS} is missing; run `python -m bench.classifier`")
    model = DigitClassifier()
    model.load_state_dict(load_file(str(WEIGHTS)))
    return model.eval()


def main() -> None:
    model, accuracy = train()
    meta = {"test_accuracy": accuracy, "epochs": 3, "seed": 0, "data": "MNIST train (60,000); scored on MNIST test"}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(WEIGHTS),
              metadata={"bbcodec_classifier": json.dumps(meta)})
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
