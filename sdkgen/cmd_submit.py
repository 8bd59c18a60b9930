"""``sdkgen submit``: run ``sdkgen build`` on a server, follow it live, download the same output folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from sdkgen import cmd_build
from sdkgen.commands import command
from sdkgen.console import console, stage_bars
from sdkgen.option_flags import options_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cmd_build.add_arguments(parser)
    parser.add_argument("--server", required=True, help="HOST:PORT of an EdgeForge server (sdkgen serve)")
    parser.add_argument("--token", help="bearer token for the server (a build token of your tenant)")
    parser.add_argument("--tls-ca", type=Path, help="PEM CA certificate: connect with TLS and trust this CA")


@command("submit", "Build on a server: upload the model, show live progress, download the SDKs like `sdkgen build`.")
def run(args: argparse.Namespace) -> int:
    import grpc

    from server.client import CompressionClient, RemoteJobError
    from server.jobs.spec import to_proto

    spec = to_proto(args.profile, cmd_build.spec_from(args), options_from(args), cmd_build.split_request_from(args))
    client = CompressionClient(args.server, args.token, args.tls_ca)
    try:
        job = client.submit(spec, args.model, args.data)
        console.print(f"submitted job [bold]{job.id}[/] to {args.server}")
        with stage_bars() as sink:
            job = client.watch(job.id, sink)
        out = client.download(job, args.out)
    except grpc.RpcError as exc:
        raise RemoteJobError(_explain(args, exc)) from None
    finally:
        client.close()
    console.print(job.summary)
    console.print(f"[green]wrote[/] {out} (job {job.id}; cloud model {job.model_name} version {job.model_version})")
    return 0


def _explain(args: argparse.Namespace, exc) -> str:
    """One line for a failed RPC; an unreachable server gets a hint (TLS servers drop plain-text calls)."""
    import grpc

    message = f"server {args.server} answered {exc.code().name}: {exc.details()}"
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        message += "; check HOST:PORT and that the server is running"
        message += "" if args.tls_ca else ", and pass --tls-ca CA.pem if it serves TLS"
    return message
