"""The CLI flags of the recipe, generated from :class:`~compressor.options.CompressOptions` (its one definition).

Each field becomes ``--field-name`` (or its declared ``flag``) in a section titled by its ``group``: booleans
are switches (``--no-...`` turns off one that is on by default), ``Literal`` fields get their choices, tuples of
enums are repeatable.  Flags the user does not give are left out of the namespace, so the options record exactly
what was asked for.
"""

from __future__ import annotations

import argparse
import enum
import types
import typing
from pathlib import Path

from pydantic import ValidationError

from compressor.errors import InvalidInputError
from compressor.options import CompressOptions


def flag_for(name: str) -> str:
    return CompressOptions.flag(name)


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per recipe field, grouped by the field's ``group``."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, info in CompressOptions.model_fields.items():
        extra = info.json_schema_extra or {}
        group = groups.setdefault(extra["group"], parser.add_argument_group(extra["group"]))
        kind, nested = _base_type(info.annotation)
        default = info.get_default()
        shown = (
            ""
            if default in (None, False)
            else f" (default {default.value if isinstance(default, enum.Enum) else default})"
        )
        common = {"dest": name, "default": argparse.SUPPRESS, "help": f"{info.description}{shown}"}
        if kind is bool:  # a switch; one that is on by default also gets its --no- form
            action = argparse.BooleanOptionalAction if default is True else "store_true"
            group.add_argument(flag_for(name), action=action, **common)
        elif kind is tuple:
            group.add_argument(flag_for(name), action="append", choices=_choices(nested), **common)
        elif typing.get_origin(kind) is typing.Literal:
            group.add_argument(flag_for(name), choices=list(typing.get_args(kind)), **common)
        else:
            group.add_argument(flag_for(name), type=kind, metavar=extra.get("metavar"), **common)


def options_from(args: argparse.Namespace) -> CompressOptions:
    """The options the command line asked for; conflicting ones raise :class:`InvalidInputError` naming the flags."""
    given = {name: getattr(args, name) for name in CompressOptions.model_fields if hasattr(args, name)}
    if "precisions" in given:
        given["precisions"] = tuple(given["precisions"])
    try:
        return CompressOptions(**given)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise InvalidInputError(f"invalid options: {problems}") from None


def _problem(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    where = str(error["loc"][0]) if error["loc"] else ""
    return f"{flag_for(where) if where in CompressOptions.model_fields else where}: {message}" if where else message


def _base_type(annotation) -> tuple[object, object | None]:
    """The field's type without ``| None``, and for ``tuple[X, ...]`` the element type ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is tuple:
        return tuple, typing.get_args(annotation)[0]
    if annotation is Path:
        return Path, None
    return annotation, None


def _choices(kind) -> list[str] | None:
    return [member.value for member in kind] if isinstance(kind, type) and issubclass(kind, enum.Enum) else None
