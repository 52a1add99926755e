"""The ``spiketune`` command: validate every job's config, then hand over to the Hydra app.

Validation composes each job's config (every combination of a ``-m`` sweep) with Hydra's compose
API and checks it against the structured configs, before TensorFlow is imported: a bad key, type,
value or option exits 2 with one line, in well under a second.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

from framework.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USER,
    UserError,
    install_signal_handlers,
    interruption,
)
from framework.paths import CONF  # noqa: E402
from framework.redact import redact

# Hydra flags that take a value, so the value is not mistaken for an override
_VALUE_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                "--package", "-p", "--cfg", "-c", "--experimental-rerun"}
_NO_RUN_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version",
                 "--shell-completion", "-sc", "--resolve"}


def _register_resolvers() -> None:
    from framework import lifecycle
    from framework.config import register_resolvers

    register_resolvers()
    lifecycle.register_resolvers()  # ${spiketune_launch_id:} in the run and sweep folders


def split_args(argv: list[str]) -> tuple[list[str], bool, bool]:
    """``(overrides, multirun, runs)``: the overrides, whether ``-m`` is given, and whether the
    command runs jobs at all (``--help`` and ``--cfg`` do not)."""
    overrides, multirun, runs, skip = [], False, True, False
    for arg in argv:
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

    from framework.config import omegaconf_message

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
                if _is_dict_field(key.rsplit(".", 1)[0]) and "." in key:
                    return f"{key}: a new entry of a dict: add it with +{key}=..."
                return f"{key}: no such key"
            return f"{key}: {msg}"
        return msg
    if "mismatched input" in text or "extraneous input" in text or "no viable" in text:
        return "override syntax: " + " ".join(text.split())[:300]
    return " ".join(text.split())[:300]


def _is_dict_field(path: str) -> bool:
    """Whether ``path`` (dotted, from the root) is a ``dict`` field of the structured config."""
    import typing

    from framework.config import Config

    cls: typing.Any = Config
    for name in path.split("."):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if name not in hints:
            return False
        cls = hints[name]
    return typing.get_origin(cls) is dict


#: keys with which Hydra builds Python objects (``hydra.utils.instantiate``)
_INSTANTIATE_KEYS = {"_target_", "_args_", "_partial_", "_recursive_", "_convert_"}


def _paths(prefix: list[str], value) -> list[tuple[list[str], object]]:
    """Every (dotted path, leaf value) an override's value sets, dict keys split on dots."""
    from hydra.core.override_parser.types import ChoiceSweep

    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(prefix + str(k).split("."), v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths(prefix, v)]
    if isinstance(value, ChoiceSweep):
        return [p for v in value.list for p in _paths(prefix, v)]
    return [(prefix, value)]


def refuse_unsafe(overrides: list[str]) -> None:
    """Refuse command-line overrides that would make Hydra import and call a Python object.

    spiketune's configs pick components by registry name and instantiate nothing, but Hydra itself
    instantiates ``hydra.callbacks``, the launcher and the sweeper from ``_target_``, and logging
    handlers from ``class``; its blocklist stops ``os.system`` yet lets ``shutil.copyfile``
    through; ``hydra.job.env_set`` reaches every subprocess a job starts (``LD_PRELOAD``). So no
    ``_target_``-style key under ``hydra``, no added callback, no environment variable and no
    logging class or ``ext://`` object may come from the command line. Removing a callback
    (``~hydra.callbacks.sweep``)
    and setting a shipped callback's options (``hydra.callbacks.sweep.compare=false``) stay allowed;
    keys outside ``hydra`` are checked against the schema, which has no such keys.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 - a syntax error is reported, with its key, by composition
        return
    for o in parsed:
        if o.is_delete():
            continue
        base = (o.package or o.key_or_group).replace("/", ".").split(".")
        for path, value in _paths(base, o.value()):
            if path[0] != "hydra":
                continue
            key = ".".join(path)
            # a string Hydra may decode into a node (oc.decode) can smuggle a _target_ in
            if isinstance(value, str) and ("oc.decode" in value or any(
                    k in value for k in _INSTANTIATE_KEYS)):
                raise UserError(f"{key}: refused on the command line: a value that decodes into "
                                f"config (oc.decode, _target_) could make Hydra call Python")
            if _INSTANTIATE_KEYS & set(path):
                raise UserError(f"{key}: refused on the command line: Hydra would import and call "
                                f"the Python object it names")
            if len(path) > 1 and path[1] == "callbacks" and (o.is_add() or o.is_force_add()):
                raise UserError(f"{key}: callbacks cannot be added from the command line")
            if path[1:3] == ["job", "env_set"]:  # LD_PRELOAD, PYTHONPATH reach subprocesses
                raise UserError(f"{key}: refused on the command line: set environment variables "
                                f"in the shell")
            if len(path) > 1 and path[1] in ("job_logging", "hydra_logging") and (
                    {"class", "()"} & set(path) or str(value).startswith(("ext://", "cfg://"))):
                raise UserError(f"{key}: refused on the command line: logging would import and "
                                f"call the Python object it names")


def check_output_dir(hydra_cfg, multirun: bool) -> None:
    """Refuse a Hydra output folder that cannot be created or written (Hydra's own error is a
    traceback and exit 1)."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        path = Path(str(hydra_cfg.sweep.dir if multirun else hydra_cfg.run.dir)).absolute()
    except Exception:  # noqa: BLE001 - a resolver only a Hydra run has: Hydra reports it itself
        return
    for folder in [path, *path.parents]:  # the nearest existing one decides
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"{key}: {folder} is a file, not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UserError(f"{key}: {folder} is not writable")
            return


def _interval_ends(parser, parsed: list) -> list:
    """Each ``interval()`` sweep as a choice of its two ends: what validation composes for a
    search space (an interval is continuous; its ends bound every value a sweeper can draw)."""
    from hydra.core.override_parser.types import IntervalSweep

    out = []
    for o in parsed:
        v = o.value() if o.is_sweep_override() else None
        if isinstance(v, IntervalSweep):
            o = parser.parse_overrides([f"{o.get_key_element()}=choice({v.start!r},{v.end!r})"])[0]
        out.append(o)
    return out


def prevalidate(argv: list[str]) -> int:
    """Compose and validate every job's config; raise UserError with one line on the first bad
    one. Returns the number of configs validated (0 for ``--help``-like flags).

    A sweep is expanded as the basic sweeper would (choices, ``range()``, ``glob()`` over a
    group's options) plus the sweeper's own ``params`` (a search's space); an ``interval()`` is
    checked at its two ends. ``--cfg`` validates the config it prints, as a run would.
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from framework.analysis import check_names
    from framework.config import register, validate

    overrides, multirun, runs = split_args(argv)
    refuse_unsafe(overrides)
    shows_cfg = any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in argv)
    if not runs and not shows_cfg:
        return 0
    if shows_cfg and "--resolve" in argv and _cfg_package(argv) == "hydra":
        # Hydra resolves its own node cut off from the job's config, which hydra.run.dir and
        # hydra.sweep.dir read (paths.outputs): it would end in a traceback
        raise UserError("--cfg hydra --resolve: Hydra resolves its node without the job's config "
                        "(hydra.run.dir uses paths.outputs); use --cfg all --resolve")
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
                refuse_unsafe(extra)
                # with the config loader, glob() can list a group's options
                parser = OverridesParser.create(
                    config_loader=GlobalHydra.instance().config_loader())
                parsed = _interval_ends(parser, parser.parse_overrides(overrides + extra))
                combos = BasicSweeper.split_arguments(parsed, None)[0]
            for combo in combos:
                cfg = compose("config", overrides=list(combo))
                validate(cfg)
                check_names(list(cfg.analysis))
            if not multirun:
                base = compose("config", overrides=overrides, return_hydra_config=True)
            check_output_dir(base.hydra, multirun)
            if multirun and shows_cfg:  # Hydra refuses the pair with a traceback
                what = (f"all {len(combos)} jobs' configs are valid" if combos == [] or not any(
                    "interval(" in a for a in overrides + extra) else
                    "the search space is valid (each interval at both ends)")
                raise UserError(f"--cfg with -m: {what}; --cfg prints one job's config, so drop "
                                f"-m and give its values")
            return len(combos)
    except UserError:
        raise
    except Exception as ex:
        if interruption():  # a signal inside an import can surface as ImportError
            raise KeyboardInterrupt from None
        raise UserError(one_line(ex)) from None
    finally:
        GlobalHydra.instance().clear()


def _cfg_package(argv: list[str]) -> str:
    """The value of ``--cfg``/``-c`` (``job``, ``hydra`` or ``all``); empty when not given."""
    for i, arg in enumerate(argv):
        if arg.startswith("--cfg="):
            return arg.split("=", 1)[1]
        if arg in ("--cfg", "-c") and i + 1 < len(argv):
            return argv[i + 1]
    return ""


def _app():
    import hydra

    @hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
    def app(cfg):
        from framework.app.jobs import run_job

        return run_job(cfg)

    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``spiketune`` and ``python -m framework``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--json" in argv:  # ours, not Hydra's: each job's stdout line as JSON
        from framework.app.jobs import JSON_ENV

        argv = [a for a in argv if a != "--json"]
        os.environ[JSON_ENV] = "1"
    if "--help" in argv or "-h" in argv:  # ours, from conf/ alone: Hydra's composes ~100 times
        from framework.app.help import text

        print(text(CONF))
        return
    install_signal_handlers()
    try:
        prevalidate(argv)
    except UserError as ex:
        print(f"spiketune: {redact(str(ex))}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except Exception as ex:
        if not interruption(ex):  # a signal inside a plugin's import can surface as ImportError
            raise
        print(f"spiketune: {interruption(ex)}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt as ex:
        print(f"spiketune: {interruption(ex) or 'interrupted'}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from framework.config import register

    register()
    _register_resolvers()
    sys.argv = [sys.argv[0]] + argv
    from framework.app.sweeps import guard

    try:
        with guard():  # a sweep: parent run ended KILLED/FAILED on errors; failed jobs → exit 2
            _app()()
    except UserError as ex:
        print(f"spiketune: {redact(str(ex))}", file=sys.stderr)
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
