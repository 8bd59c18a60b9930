"""The registry of ``sdkgen`` sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from compressor.registry import Registry


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


commands: Registry[Command] = Registry("sdkgen command")


def command(name: str, help: str):
    """Register a module-level pair ``add_arguments(parser)`` / ``run(args)`` as a sub-command."""

    def register(module_run):
        add = module_run.__globals__["add_arguments"]
        commands.register(name)(Command(help, add, module_run))
        return module_run

    return register
