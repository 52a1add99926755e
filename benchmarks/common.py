"""Shared by benchmarks: the repo on sys.path, configs composed as the CLI does, machine facts."""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def compose(overrides: list[str]):
    """The config the CLI would build for ``overrides`` (validated by the pipeline itself)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from framework.app import startup
    from framework.config import register
    from framework.paths import CONF

    register()
    startup.start()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def machine() -> str:
    """One line: CPU count, load, kernel, Python, and TensorFlow/NengoDL versions if imported."""
    versions = [f"python {platform.python_version()}"]
    for mod in ("tensorflow", "nengo_dl", "nengo", "mlflow"):
        if mod in sys.modules:
            versions.append(f"{mod} {sys.modules[mod].__version__}")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{os.cpu_count()} cores, load average {load}; {' '.join(platform.uname()[:3])}; "
            f"{', '.join(versions)}; {time.strftime('%Y-%m-%d %H:%M')}")


def median(values) -> float:
    return statistics.median(values)


class Timer:
    """``with Timer() as t: ...`` then ``t.s``: wall-clock seconds."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0
