"""The ``spiketune`` command: validate every job's config, then hand over to the Hydra app.

Validation composes each job's config (every combination of a ``-m`` sweep) with Hydra's compose
API and checks it against the structured configs, before TensorFlow is imported: a bad key, type,
value or option exits 2 with one line, in well under a second.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from .errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USER, UserError,
                     install_signal_handlers, interruption)

CONF = Path(__file__).resolve().parents[1] / "conf"
# Hydra flags that take a value, so the value is not mistaken for an override
_VALUE_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                "--package", "-p", "--cfg", "-c", "--experimental-rerun"}
_NO_RUN_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version",
                 "--shell-completion", "-sc", "--resolve"}


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    from .tracking import OUTPUTS

    if not OmegaConf.has_resolver("spiketune_outputs"):
        OmegaConf.register_new_resolver("spiketune_outputs", lambda: str(OUTPUTS))


def split_args(argv: list[str]) -> tuple[list[str], bool, bool]:
    """``(overrides, multirun, runs)``: the overrides, whether ``-m`` is given, and whether the
    command runs jobs at all (``--help`` and ``--cfg`` do not)."""
    overrides, multirun, runs, skip = [], False, True, False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _NO_RUN_FLAGS or arg.split("=")[0] in _NO_RUN_FLAGS:
            runs = False
            skip = arg in _VALUE_FLAGS and "=" not in arg
        elif arg in _VALUE_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides, multirun, runs


def one_line(ex: BaseException) -> str:
    """A one-line, key-naming message for a Hydra or OmegaConf composition error."""
    from hydra.errors import MissingConfigException

    from .config import omegaconf_message

    text = str(ex)
    if isinstance(ex, MissingConfigException) or "Could not find '" in text:
        m = re.search(r"Could not find '([^']+)'", text)
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        if m and "/" in m.group(1):
            group, name = m.group(1).rsplit("/", 1)
            choose = f"; choose from {', '.join(options)}" if options else ""
            return f"{group}={name}: no such option{choose}"
        return text.splitlines()[0]
    if "Could not override" in text or "Could not append" in text or ex.__cause__ is not None:
        m = re.search(r"Could not (?:override|append to config)[^']*'([^']+)'", text)
        msg = omegaconf_message(ex.__cause__ or ex)
        key = m.group(1) if m else None
        if key and not msg.startswith(key):
            if "not in struct" in text or "is not in" in text:
                return f"{key}: no such key"
            return f"{key}: {msg}"
        return msg
    if "mismatched input" in text or "extraneous input" in text or "no viable" in text:
        return "override syntax: " + " ".join(text.split())[:300]
    return " ".join(text.split())[:300]


def prevalidate(argv: list[str]) -> None:
    """Compose and validate every job's config; raise UserError with one line on the first bad one."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from .analysis import check_names
    from .config import register, validate

    overrides, multirun, runs = split_args(argv)
    if not runs:
        return
    register()
    _register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            combos = [overrides]
            if multirun:
                fixed = [o for o in overrides if "," not in o.split("=", 1)[-1]
                         and "(" not in o.split("=", 1)[-1]]
                base = compose("config", overrides=fixed, return_hydra_config=True)
                given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
                params = base.hydra.sweeper.get("params") or {}
                extra = [f"{k}={v}" for k, v in params.items() if k not in given]
                parsed = OverridesParser.create().parse_overrides(overrides + extra)
                combos = BasicSweeper.split_arguments(parsed, None)[0]
            for combo in combos:
                cfg = compose("config", overrides=list(combo))
                validate(cfg)
                check_names(list(cfg.analysis))
    except UserError:
        raise
    except Exception as ex:
        raise UserError(one_line(ex)) from None
    finally:
        GlobalHydra.instance().clear()


def _app():
    import hydra

    @hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
    def app(cfg):
        from .jobs import run_job

        return run_job(cfg)

    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``spiketune`` and ``python -m framework``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    install_signal_handlers()
    try:
        prevalidate(argv)
    except UserError as ex:
        print(f"spiketune: {ex}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .config import register

    register()
    _register_resolvers()
    sys.argv = [sys.argv[0]] + argv
    try:
        _app()()
    except UserError as ex:
        print(f"spiketune: {ex}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except KeyboardInterrupt as ex:
        print(f"spiketune: {interruption(ex) or 'interrupted'}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except BaseException as ex:  # noqa: BLE001 - the last line of defence
        if interruption(ex):
            print(f"spiketune: {interruption(ex)}", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        import traceback

        traceback.print_exc()
        print(f"spiketune: internal error: {type(ex).__name__}: {ex}", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
