"""Train the digits CNN and write the example bundle.

Writes ``model.pt2`` (torch.export.save, dynamic batch), ``train.npz`` (the
``x`` and ``labels`` it was trained on: what pruned models are fine-tuned and
calibrated on), ``data.npz`` (held out: what candidates are validated on) and
``labels.txt`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from model import CLASSES, DigitsCNN, accuracy, load_digits_split, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = load_digits_split()
    model = train(DigitsCNN(), x_train, y_train, epochs=args.epochs)
    acc = accuracy(model, x_test, y_test)
    print(f"held-out accuracy: {acc:.4f} on {len(y_test)} samples")
    if acc < 0.97:
        raise SystemExit(f"held-out accuracy {acc:.4f} is below 0.97; not writing the example")
    args.out.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.from_numpy(x_test[:2]),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, args.out / "model.pt2")
    np.savez(args.out / "train.npz", x=x_train, labels=y_train)
    np.savez(args.out / "data.npz", x=x_test, labels=y_test)
    (args.out / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    written = ", ".join(str(args.out / name) for name in ("model.pt2", "train.npz", "data.npz", "labels.txt"))
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
