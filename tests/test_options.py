"""One options definition: the CLI flags, the typed proto recipe and report.json all follow CompressOptions."""

from __future__ import annotations

import argparse
import typing

import pytest

from compressor.errors import InvalidInputError
from compressor.options import CompressOptions
from compressor.profiles import Precision
from sdkgen.option_flags import add_option_arguments, flag_for, options_from
from server.gen.edgeforge.v1 import compression_pb2 as pb
from server.jobs.spec import options_from_proto, options_to_proto

EVERYTHING = CompressOptions(
    max_accuracy_drop=2.5,
    min_cosine=0.98,
    min_top1_agreement=0.95,
    precisions=(Precision.FP16, Precision.INT8_FULL),
    validation_fraction=0.25,
    split_seed=3,
    calibration_samples=64,
    calibration="percentile",
    bias_correction=False,
    int8_fallback=False,
    latency_warmup=2,
    latency_repeats=7,
    prune="structured",
    sparsity=0.4,
    criterion="taylor",
    prune_scope="layer",
    distill=True,
    temperature=3.0,
    distill_alpha=0.25,
    cluster=16,
    finetune_epochs=3,
    finetune_seconds=12.5,
    finetune_seed=4,
    target_size_kb=40.0,
    target_latency_ms=1.5,
    select="latency",
    mixed_precision=True,
    qat_steps=40,
    strict_gate=True,
    int4_qat_steps=120,
    int4_qat_seconds=75.5,
    gptq=False,
)
LOCAL_FILES = {"train_data": "train.npz", "val_data": "val.npz"}


def wire_fields() -> set[str]:
    return {n for n, f in CompressOptions.model_fields.items() if (f.json_schema_extra or {}).get("wire", True)}


def test_every_wire_option_has_a_proto_field_and_nothing_else_does():
    assert {f.name for f in pb.CompressOptions.DESCRIPTOR.fields} == wire_fields()
    assert set(CompressOptions.model_fields) - wire_fields() == set(LOCAL_FILES)


def test_options_round_trip_through_the_proto():
    assert set(EVERYTHING.model_fields_set) >= wire_fields()
    back = options_from_proto(pb.CompressOptions.FromString(options_to_proto(EVERYTHING).SerializeToString()))
    assert back == EVERYTHING
    assert options_from_proto(pb.CompressOptions()) == CompressOptions()  # nothing set: the defaults


def test_the_proto_recipe_is_checked_like_the_options():
    with pytest.raises(InvalidInputError, match="sparsity needs a pruning kind"):
        options_from_proto(pb.CompressOptions(sparsity=0.5))
    with pytest.raises(InvalidInputError, match="precisions"):
        options_from_proto(pb.CompressOptions(precisions=["int3"]))
    with pytest.raises(InvalidInputError, match="names a file on your machine"):
        options_to_proto(CompressOptions(prune="unstructured", train_data="train.npz"))
    with pytest.raises(InvalidInputError, match="names a file on your machine"):
        options_to_proto(CompressOptions(val_data="val.npz"))


def test_every_option_has_a_flag_that_sets_it():
    parser = argparse.ArgumentParser()
    add_option_arguments(parser)
    argv = []
    for name in CompressOptions.model_fields:
        value = getattr(EVERYTHING, name)
        if name in LOCAL_FILES:
            argv += [flag_for(name), LOCAL_FILES[name]]
        elif isinstance(value, bool):  # on: the switch; off when on by default: its --no- form
            default = CompressOptions.model_fields[name].default
            argv += [flag_for(name)] if value else ([f"--no-{flag_for(name)[2:]}"] if default else [])
        elif isinstance(value, tuple):
            for item in value:
                argv += [flag_for(name), item.value]
        else:
            argv += [flag_for(name), str(value)]
    parsed = options_from(parser.parse_args(argv))
    assert parsed.model_dump(exclude=set(LOCAL_FILES)) == EVERYTHING.model_dump(exclude=set(LOCAL_FILES))
    assert {name: str(getattr(parsed, name)) for name in LOCAL_FILES} == LOCAL_FILES
    assert options_from(parser.parse_args([])).model_fields_set == set()  # flags not given are not "asked for"


def test_flag_errors_name_the_flag():
    parser = argparse.ArgumentParser()
    add_option_arguments(parser)
    with pytest.raises(InvalidInputError, match="--sparsity: Input should be greater than 0"):
        options_from(parser.parse_args(["--prune", "structured", "--sparsity", "0"]))


def test_flags_are_named_in_one_place():
    assert CompressOptions.flag("precisions") == "--precision" and CompressOptions.flag("min_cosine") == "--min-cosine"
    assert typing.get_args(CompressOptions.model_fields["prune"].annotation)  # a Literal: the CLI offers its choices
