"""``spiketune-ui``: the MLflow UI on the project's store, bound to the loopback interface.

    spiketune-ui                      # http://127.0.0.1:5000, store outputs/mlflow.db
    spiketune-ui --port 5001 --uri sqlite:////data/team.db

It runs ``mlflow ui --backend-store-uri <uri> --host 127.0.0.1 --port 5000`` in place of itself (so
Ctrl-C stops the server directly). Another ``--host`` must be given explicitly: the UI has no
authentication, and whoever reaches the port can read and delete runs.

The server is MLflow's own app with one change (framework/app/mlflow_app.py): a browser's first
visit opens on the runs table, not on MLflow's GenAI pages.

Before it starts the server it prints deep links into it (MLflow 3.17 opens an experiment on its
GenAI pages otherwise): the runs table of ``--experiment`` in model-training mode, its latest run
and its latest sweep. Runs and sweeps print the same links at their end, on
``tracking.ui_url`` / ``$SPIKETUNE_UI_URL`` when the UI is served elsewhere.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from framework.app.server import APP
from framework.errors import EXIT_USER, UserError
from framework.paths import default_uri
from framework.tracking.links import ui_links
from framework.tracking.store import open_store, resolve_uri, retry

LOOPBACK = "127.0.0.1"


def command(host: str = LOOPBACK, port: int = 5000, uri: str = "") -> list[str]:
    """The ``mlflow ui`` command line for ``uri`` (default the project's absolute sqlite store)."""
    uri = resolve_uri(uri) if uri else default_uri()
    here = Path(sys.executable).with_name("mlflow")
    exe = [str(here)] if here.exists() else ([shutil.which("mlflow")] if shutil.which("mlflow")
                                             else [sys.executable, "-m", "mlflow"])
    return [*exe, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), *APP]


def base_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches the server bound to ``host``:``port`` (an
    any-address bind is reached on the loopback)."""
    if host in ("0.0.0.0", ""):
        host = LOOPBACK
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def links(store: str, experiment: str, base: str) -> list[str]:
    """Lines naming the deep links into the UI at ``base`` for ``experiment`` in ``store``: its
    runs table, its latest run, its latest sweep (one line saying so when it has no runs yet)."""
    client = open_store(store)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [f"experiment '{experiment}' has no runs yet; a run prints its own links"]
    out = ui_links(base, exp.experiment_id)
    lines = [f"runs of '{experiment}'  {out['runs']}"]
    latest = retry(client.search_runs, [exp.experiment_id], max_results=1,
                   order_by=["attributes.start_time DESC"])
    if latest:
        run = latest[0]
        lines.append(f"latest run ({run.info.run_name})  "
                     f"{ui_links(base, exp.experiment_id, run.info.run_id)['run']}")
    sweeps = retry(client.search_runs, [exp.experiment_id], max_results=1,
                   filter_string="tags.`spiketune.sweep` = 'parent'",
                   order_by=["attributes.start_time DESC"])
    if sweeps:
        sweep = sweeps[0]
        lines.append(f"latest sweep ({sweep.info.run_name})  "
                     f"{ui_links(base, exp.experiment_id, '', sweep.info.run_id)['sweep']}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``spiketune-ui``: print the deep links, then replace this process with the
    MLflow UI server."""
    p = argparse.ArgumentParser(prog="spiketune-ui", description=__doc__.split("\n")[0])
    p.add_argument("--host", default=LOOPBACK, help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="TCP port (default 5000)")
    p.add_argument("--uri", default="", help="MLflow tracking URI (default the project's store)")
    p.add_argument("--experiment", default="spiketune",
                   help="experiment whose runs the printed links open (default spiketune)")
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
    base = base_url(args.host, args.port)
    try:
        lines = links(store, args.experiment, base)
    except UserError as ex:  # a store that cannot be opened: the server could not either
        print(f"spiketune-ui: {ex}", file=sys.stderr)
        sys.exit(EXIT_USER)
    print(f"spiketune-ui: {store} on {base}; once it is up, open:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
