"""``sdkgen profiles``: the hardware profiles and their key figures."""

from __future__ import annotations

import argparse

from rich.table import Table

from compressor.profiles import all_profiles
from sdkgen.commands import command
from sdkgen.console import out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the profiles as JSON")


@command("profiles", "List hardware profiles with their formats, precisions, budgets and figures.")
def run(args: argparse.Namespace) -> int:
    profiles = all_profiles()
    if args.json:
        import json

        out.print_json(json.dumps({n: p.model_dump(mode="json") for n, p in profiles.items()}))
        return 0
    table = Table(title="EdgeForge hardware profiles")
    for column in (
        "name",
        "platform",
        "formats",
        "precisions",
        "memory MB",
        "storage MB",
        "best GMAC/s",
        "uplink Mbps",
        "RTT ms",
        "figures",
    ):
        table.add_column(column, no_wrap=True)
    table.add_column("device")
    for name, p in profiles.items():
        table.add_row(
            name,
            p.platform,
            ",".join(f.value for f in p.accepts.formats),
            " ".join(x.value for x in p.accepts.precisions),
            f"{p.budgets.memory_mb:g}",
            f"{p.budgets.storage_mb:g}",
            f"{max(p.compute.gmacs.values()):g}",
            f"{p.network.uplink_mbps:g}",
            f"{p.network.rtt_ms:g}",
            "estimate" if p.compute.estimate else "measured",
            p.display_name,
        )
    out.print(table)
    return 0
