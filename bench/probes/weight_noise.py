"""How much a zoo torch model amplifies weight rounding (docs/coverage-findings.md F6): no quantizer, only noise.

Every weight tensor (2-D and up) gets uniform noise of a fraction of its per-output-channel int8 step
(``max|w| / 127``), as symmetric per-channel int8 rounding adds, and the float model's outputs are compared with the
original's on the zoo's samples, one sample at a time.  A model whose cosine falls under the 0.99 gate at a quarter
of a step (10-bit weights) cannot meet it with any 8-bit post-training scheme.

    .venv/bin/python bench/probes/weight_noise.py mobilenet_v2-dyn resnet-dyn
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

STEPS = (0.25, 1.0, 2.5)  # noise widths, in int8 steps


def main(names: list[str]) -> None:
    import torch
    from model_zoo import build, import_output_types

    import_output_types()
    for name in names:
        zoo_model = build(name, ROOT / "build" / "zoo")
        module = torch.export.load(str(zoo_model.model)).module()
        arrays = dict(np.load(zoo_model.data))
        x = torch.from_numpy(next(v for k, v in arrays.items() if k != "labels"))
        reference = _outputs(module, x)
        original = {k: v.clone() for k, v in module.state_dict().items()}
        for width in STEPS:
            generator = torch.Generator().manual_seed(1)
            noisy = {k: _noisy(v, width, generator) for k, v in original.items()}
            module.load_state_dict(noisy, strict=False)
            got = _outputs(module, x)
            cosine = torch.nn.functional.cosine_similarity(got, reference, dim=1)
            top1 = (got.argmax(1) == reference.argmax(1)).float().mean()
            print(
                f"{name}: noise of {width:.2f} int8 step: cosine mean {cosine.mean():.4f} min {cosine.min():.4f}, "
                f"top-1 agreement {top1:.3f} ({len(x)} samples)"
            )
        module.load_state_dict(original)


def _noisy(weight, width: float, generator):
    import torch

    if not weight.is_floating_point() or weight.dim() < 2:
        return weight
    step = weight.abs().reshape(weight.shape[0], -1).amax(1).reshape(-1, *[1] * (weight.dim() - 1)) / 127
    return weight + (torch.rand(weight.shape, generator=generator) - 0.5) * step * width


def _outputs(module, x):
    import torch

    rows = []
    with torch.no_grad():
        for i in range(len(x)):
            out = module(x[i : i + 1])
            out = out if torch.is_tensor(out) else next(iter(out.values())) if isinstance(out, dict) else out[0]
            rows.append(out.reshape(1, -1))
    return torch.cat(rows)


if __name__ == "__main__":
    main(sys.argv[1:] or ["mobilenet_v2-dyn", "resnet-dyn"])
