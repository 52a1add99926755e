"""``spiketune-ui``: the MLflow UI on the project's store, bound to the loopback interface.

    spiketune-ui                      # http://127.0.0.1:5000, store outputs/mlflow.db
    spiketune-ui --port 5001 --uri sqlite:////data/team.db

It runs ``mlflow ui --backend-store-uri <uri> --host 127.0.0.1 --port 5000`` in place of itself (so
Ctrl-C stops the server directly). Another ``--host`` must be given explicitly: the UI has no
authentication, and whoever reaches the port can read and delete runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .errors import EXIT_USER

LOOPBACK = "127.0.0.1"


def command(host: str = LOOPBACK, port: int = 5000, uri: str = "") -> list[str]:
    """The ``mlflow ui`` command line for ``uri`` (default the project's absolute sqlite store)."""
    from .tracking import default_uri, resolve_uri

    uri = resolve_uri(uri) if uri else default_uri()
    here = Path(sys.executable).with_name("mlflow")
    exe = [str(here)] if here.exists() else ([shutil.which("mlflow")] if shutil.which("mlflow")
                                             else [sys.executable, "-m", "mlflow"])
    return [*exe, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``spiketune-ui``: replace this process with the MLflow UI server."""
    p = argparse.ArgumentParser(prog="spiketune-ui", description=__doc__.split("\n")[0])
    p.add_argument("--host", default=LOOPBACK, help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="TCP port (default 5000)")
    p.add_argument("--uri", default="", help="MLflow tracking URI (default the project's store)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not 0 < args.port < 65536:
        print(f"spiketune-ui: --port: must be in 1..65535, got {args.port}", file=sys.stderr)
        sys.exit(EXIT_USER)
    cmd = command(args.host, args.port, args.uri)
    store = cmd[cmd.index("--backend-store-uri") + 1]
    if store.startswith("sqlite:///"):
        Path(store[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    if args.host not in (LOOPBACK, "localhost", "::1"):
        print(f"spiketune-ui: warning: serving on {args.host}: anyone who can reach port "
              f"{args.port} can read and delete runs", file=sys.stderr)
    print(f"spiketune-ui: {store} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)
