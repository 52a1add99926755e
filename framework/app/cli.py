"""The ``spiketune`` command: validate every job's config, then hand over to the Hydra app.

Validation composes each job's config (every combination of a ``-m`` sweep) with Hydra's compose
API and checks it against the structured configs, before TensorFlow is imported: a bad key, type,
value or option exits 2 with one line, in well under a second.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import sys
import traceback
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from framework import config
from framework.app import help as usage
from framework.app import jobs, startup, sweep_records
from framework.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USER,
    UserError,
    install_signal_handlers,
    interruption,
)
from framework.paths import CONF
from framework.plugin_host import check_names
from framework.redact import SERVER_ENV, redact, split_credentials
from framework.schema import override_key

if TYPE_CHECKING:  # Hydra is imported where it is used: `spiketune --help` imports none of it
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Override

# Hydra flags that take a value, so the value is not mistaken for an override
_VALUE_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                "--package", "-p", "--cfg", "-c", "--experimental-rerun"}
_NO_RUN_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version",
                 "--shell-completion", "-sc", "--resolve"}


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
        msg = config.omegaconf_message(ex.__cause__ or ex)
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
    cls: Any = config.Config
    for name in path.split("."):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if name not in hints:
            return False
        cls = hints[name]
    return typing.get_origin(cls) is dict


#: keys with which Hydra builds Python objects (``hydra.utils.instantiate``)
_INSTANTIATE_KEYS = {"_target_", "_args_", "_partial_", "_recursive_", "_convert_"}


def _paths(prefix: list[str], value: Any) -> list[tuple[list[str], object]]:
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
        _refuse_nested_sweep(o)
        base = (o.package or o.key_or_group).replace("/", ".").split(".")
        for path, value in _paths(base, o.value()):
            if _is_group(o.key_or_group):
                _refuse_path_choice(o.key_or_group, value)
            _refuse_node_interpolation(path, value)
            if path[0] == "hydra":
                _refuse_hydra_key(path, value, adds=o.is_add() or o.is_force_add())
                _refuse_hydra_path(path, value)


#: the parts of Hydra's config it instantiates (``_target_``, logging ``class``/``()``)
_INSTANTIATED = {"callbacks", "launcher", "sweeper", "job_logging", "hydra_logging"}
#: a resolver that turns a string into config nodes, which may hold a ``_target_``
_NODE_RESOLVER = re.compile(r"\$\{\s*oc\.(?:create|decode)\s*:")
#: an option name of a config group (conf/<group>/<name>.yaml): no folder, no ``..``
_OPTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def _refuse_nested_sweep(o: Override) -> None:
    """``choice(10,choice(1,2))``: Hydra expands only the outer sweep and fails later on a key it
    did not sweep."""
    from hydra.core.override_parser.types import Sweep

    value = o.value() if o.is_sweep_override() else None
    if any(isinstance(v, Sweep) for v in getattr(value, "list", None) or []):
        raise UserError(f"{o.get_key_element()}: a sweep inside a sweep is not expanded; give "
                        f"every value in one choice() or a,b,c list")


def _is_group(key: str) -> bool:
    """Whether the override's key is a config group (``experiment``, ``hydra/launcher``)."""
    return "/" in key or ("." not in key and key != "hydra" and (CONF / key).is_dir())


def _refuse_path_choice(group: str, value: object) -> None:
    """A group's choice is the name of one of its options, never a path: ``../`` or ``/`` would
    load a YAML file (and the ``hydra.callbacks`` in it) from outside conf/."""
    if isinstance(value, str) and value and (not _OPTION_NAME.fullmatch(value) or ".." in value):
        raise UserError(f"{group}={value}: a choice of {group} is an option's name, not a path")


def _refuse_node_interpolation(path: list[str], value: object) -> None:
    """No command-line value creates config nodes (``oc.create``, ``oc.decode``), and none under
    Hydra's instantiated parts interpolates: either could bring in a ``_target_`` from a value
    spiketune does not check (``tracking.run_name='{_target_: ...}'``)."""
    if not isinstance(value, str) or "${" not in value:
        return
    key = ".".join(path)
    if _NODE_RESOLVER.search(value):
        raise UserError(f"{key}: refused on the command line: oc.create and oc.decode turn a "
                        f"value into config, which could make Hydra call Python")
    if path[0] == "hydra" and (len(path) == 1 or path[1] in _INSTANTIATED):
        raise UserError(f"{key}: refused on the command line: an interpolation here could bring "
                        f"in config that makes Hydra call Python")


def _leads_out(value: object, plain: bool) -> bool:
    """Whether a folder or file name from the command line leads out of the folder it is taken
    in: absolute, with ``..``, or (``plain``: a name) with a folder at all."""
    if not isinstance(value, str) or "${" in value:  # interpolations of spiketune's own keys
        return False
    return Path(value).is_absolute() or ".." in Path(value).parts or (plain and "/" in value)


def _refuse_hydra_path(path: list[str], value: object) -> None:
    """Hydra keys that name files or folders beyond the run's own folders are not taken from the
    command line: a search path loads presets (and their callbacks) from elsewhere, a log
    handler's file name writes anywhere; a job's name and output subfolder stay plain names."""
    key = ".".join(path)
    if path[1:2] == ["searchpath"]:
        raise UserError(f"{key}: refused on the command line: presets load from spiketune's "
                        f"conf/ only")
    if path[1] in ("job_logging", "hydra_logging") and "filename" in path:
        raise UserError(f"{key}: refused on the command line: a job's log is written in its "
                        f"own folder")
    if path[1:3] == ["job", "env_copy"]:
        raise UserError(f"{key}: refused on the command line: set environment variables "
                        f"in the shell")
    if path[1:] in (["output_subdir"], ["sweep", "subdir"], ["job", "name"]) and _leads_out(
            value, plain=path[1] == "job"):
        raise UserError(f"{key}: {value} would lead out of the run's folder")
    if path[1] == "launcher" and path[-1].endswith("_folder"):
        raise UserError(f"{key}: refused on the command line: the launcher's files stay in "
                        f"the sweep's folder")


def _refuse_hydra_key(path: list[str], value: object, adds: bool) -> None:
    """Raise UserError when setting ``path`` (under ``hydra``) to ``value`` from the command line
    could make Hydra call Python (see :func:`refuse_unsafe`); ``adds``: a ``+`` override."""
    key = ".".join(path)
    # a string Hydra may decode into a node (oc.decode) can smuggle a _target_ in
    if isinstance(value, str) and ("oc.decode" in value or any(
            k in value for k in _INSTANTIATE_KEYS)):
        raise UserError(f"{key}: refused on the command line: a value that decodes into "
                        f"config (oc.decode, _target_) could make Hydra call Python")
    if _INSTANTIATE_KEYS & set(path):
        raise UserError(f"{key}: refused on the command line: Hydra would import and call "
                        f"the Python object it names")
    if len(path) > 1 and path[1] == "callbacks" and adds:
        raise UserError(f"{key}: callbacks cannot be added from the command line")
    if path[1:3] == ["job", "env_set"]:  # LD_PRELOAD, PYTHONPATH reach subprocesses
        raise UserError(f"{key}: refused on the command line: set environment variables "
                        f"in the shell")
    if len(path) > 1 and path[1] in ("job_logging", "hydra_logging") and (
            {"class", "()"} & set(path) or str(value).startswith(("ext://", "cfg://"))):
        raise UserError(f"{key}: refused on the command line: logging would import and "
                        f"call the Python object it names")


def check_output_dir(hydra_cfg: DictConfig, multirun: bool) -> None:
    """Refuse a Hydra output folder that cannot be created or written (Hydra's own error is a
    traceback and exit 1)."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        path = Path(str(hydra_cfg.sweep.dir if multirun else hydra_cfg.run.dir)).absolute()
    except Exception:  # noqa: BLE001 - a resolver only a Hydra run has: Hydra reports it itself
        return
    check_folder(path, key)


def check_folder(path: Path, key: str) -> None:
    """Refuse a folder spiketune is to create or write in when it cannot: the nearest existing
    one of ``path`` and its parents decides (``$SPIKETUNE_CACHE_DIR`` set to a file, say)."""
    for folder in [path, *path.parents]:
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"{key}: {folder} is a file, not a folder")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UserError(f"{key}: {folder} is not writable")
            return


def _interval_ends(parser: OverridesParser, parsed: list[Override]) -> list[Override]:
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


def _fixed(overrides: list[str]) -> list[str]:
    """The overrides that do not sweep (no ``a,b`` list, no ``choice()``/``range()``/...)."""
    return [o for o in overrides if "," not in o.split("=", 1)[-1]
            and "(" not in o.split("=", 1)[-1]]


def _search_extra(base: DictConfig, overrides: list[str]) -> list[str]:
    """The sweeper's own ``params`` in ``base`` (a search's space, from a preset) not given on
    the command line, as overrides; refused like the command line's when unsafe."""
    given = {override_key(o) for o in overrides}
    params = base.hydra.sweeper.get("params") or {}
    extra = [f"{k}={v}" for k, v in params.items() if k not in given]
    refuse_unsafe(extra)
    return extra


def _combos(overrides: list[str], extra: list[str]) -> list[list[str]]:
    """Every job's overrides, as the basic sweeper expands them (choices, ``range()``, ``glob()``
    over a group's options), each ``interval()`` at its two ends."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # with the config loader, glob() can list a group's options
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = _interval_ends(parser, parser.parse_overrides(overrides + extra))
    return [list(combo) for combo in BasicSweeper.split_arguments(parsed, None)[0]]


def _validate_jobs(overrides: list[str], multirun: bool, shows_cfg: bool) -> int:
    """Inside Hydra's initialised config dir: compose and validate each job's config and check
    the output folder; returns how many configs were validated."""
    from hydra import compose

    extra: list[str] = []
    combos = [overrides]
    if multirun:
        base = compose("config", overrides=_fixed(overrides), return_hydra_config=True)
        extra = _search_extra(base, overrides)
        combos = _combos(overrides, extra)
    stores = set()
    for combo in combos:
        cfg = compose("config", overrides=list(combo))
        obj = config.validate(cfg)
        check_names(list(cfg.analysis))
        stores.add(obj.tracking.uri)
        if obj.training.cache and obj.paths.cache:  # relative: from the launch directory
            check_folder(Path(obj.paths.cache).expanduser().absolute(), "paths.cache")
    if multirun:
        _check_sweep(overrides, len(combos), stores)
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


def _check_sweep(overrides: list[str], jobs: int, stores: set[str]) -> None:
    """A sweep has jobs, and all of them write to one store: the parent run, its children and
    the sweep's records are found together (``-m paths.store=a,b`` would split them)."""
    swept = [override_key(o) for o in overrides if o not in _fixed(overrides)]
    if jobs == 0:
        raise UserError(f"{', '.join(swept) or 'the sweep'}: the sweep has no jobs (an empty "
                        f"choice or a glob() that matches no option)")
    if len(stores) > 1:
        key = next((k for k in swept if k.startswith(("paths.", "tracking."))), "tracking.uri")
        raise UserError(f"{key}: a sweep writes to one store, these jobs to {len(stores)}; run "
                        f"one sweep per store")


def prevalidate(argv: list[str]) -> int:
    """Compose and validate every job's config; raise UserError with one line on the first bad
    one. Returns the number of configs validated (0 for ``--help``-like flags).

    A sweep is expanded as the basic sweeper would (choices, ``range()``, ``glob()`` over a
    group's options) plus the sweeper's own ``params`` (a search's space); an ``interval()`` is
    checked at its two ends. ``--cfg`` validates the config it prints, as a run would.
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

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
    _prepare()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return _validate_jobs(overrides, multirun, shows_cfg)
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


def _prepare() -> None:
    """What this process needs before Hydra composes: the schemas in Hydra's ConfigStore and the
    start-up's resolvers (both idempotent)."""
    config.register()
    startup.start()


class _Task:
    """The Hydra task function: one job (:func:`framework.app.jobs.run_job`).

    An object rather than a function so that a launcher's worker (joblib, submitit, Ray), which
    unpickles it, runs the start-up first: Hydra resolves the job's config (its
    ``hydra.sweep.dir``) there before any job code runs. Defined here, so that Hydra names the
    job ``cli`` (its log is ``cli.log``) as before.
    """

    def __call__(self, cfg: DictConfig) -> jobs.JobResult:
        return jobs.run_job(cfg)

    def __reduce__(self) -> tuple[Callable[[], _Task], tuple[()]]:
        return _unpickled_task, ()


def _unpickled_task() -> _Task:
    """The task in a launcher's worker, after the start-up."""
    startup.start()
    return _Task()


def _app() -> Callable[[], Any]:
    """The Hydra app: :class:`_Task` under ``hydra.main`` with spiketune's ``conf/``."""
    import hydra

    main_of = hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
    return typing.cast(Callable[[], Any], main_of(_Task()))


def _exit(code: int, message: str) -> typing.NoReturn:
    print(f"spiketune: {redact(message)}", file=sys.stderr)
    sys.exit(code)


def _check(argv: list[str]) -> None:
    """:func:`prevalidate`, with a user error or an interruption as one line and its exit code."""
    try:
        prevalidate(argv)
    except UserError as ex:
        _exit(EXIT_USER, str(ex))
    except Exception as ex:
        why = interruption(ex)
        if not why:  # a signal inside a plugin's import can surface as ImportError
            raise
        _exit(EXIT_INTERRUPTED, why)
    except KeyboardInterrupt as ex:
        _exit(EXIT_INTERRUPTED, interruption(ex) or "interrupted")


@contextlib.contextmanager
def _masked_stdout(runs: bool) -> Iterator[None]:
    """What Hydra prints without running a job (``--cfg``, ``--info``, a usage error), passwords
    masked; a
    run's own stdout lines are masked where they are written (framework/progress.py)."""
    if runs:
        yield
        return
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        sys.stdout.write(redact(out.getvalue()))
        sys.stderr.write(redact(err.getvalue()))


def _launch(argv: list[str]) -> None:
    """Run the Hydra app on ``argv``: each way it can end becomes one line and an exit code."""
    sys.argv = [sys.argv[0]] + argv
    try:
        # a sweep: its parent run ends KILLED/FAILED on errors; failed jobs make exit 2
        with sweep_records.guard(), _masked_stdout(split_args(argv)[2]):
            _app()()
    except UserError as ex:
        _exit(EXIT_USER, str(ex))
    except KeyboardInterrupt as ex:
        _exit(EXIT_INTERRUPTED, interruption(ex) or "interrupted")
    except SystemExit:
        raise
    except BaseException as ex:  # noqa: BLE001 - the last line of defence
        why = interruption(ex)
        if why:
            _exit(EXIT_INTERRUPTED, why)
        traceback.print_exc()
        print(f"spiketune: internal error: {type(ex).__name__}: {ex}", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)


#: the keys that name the tracking store
_STORE_KEYS = ("tracking.uri", "paths.store")


def credentials_to_environment(argv: list[str]) -> list[str]:
    """``argv`` with an http(s) store's ``user:password@`` moved to MLflow's own environment
    variables (:data:`framework.redact.SERVER_ENV`), which every job inherits.

    Taken out before Hydra sees the override, the password is in no config, saved override,
    launcher pickle, sweep record, run tag or line Hydra or MLflow prints; masking
    (:func:`framework.redact.redact`) stays for what cannot move (a database URI's password).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for arg in argv:
        key, eq, _ = arg.partition("=")
        split = None
        if eq and key.lstrip("+") in _STORE_KEYS:
            try:
                value = OverridesParser.create().parse_override(arg).value()
            except Exception:  # noqa: BLE001 - composition reports a syntax error with its key
                value = None
            split = split_credentials(value) if isinstance(value, str) else None
        if split is None or "'" in split[0] or "\\" in split[0]:
            out.append(arg)
            continue
        uri, user, password = split
        os.environ.update(zip(SERVER_ENV, (user, password)))
        out.append(f"{key}='{uri}'")
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``spiketune`` and ``python -m framework``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--json" in argv:  # ours, not Hydra's: each job's stdout line as JSON
        argv = [a for a in argv if a != "--json"]
        os.environ[jobs.JSON_ENV] = "1"
    if "--help" in argv or "-h" in argv:  # ours, from conf/ alone: Hydra's composes ~100 times
        print(usage.text(CONF))
        return
    install_signal_handlers()
    if any(a.lstrip("+").startswith(_STORE_KEYS) for a in argv):
        argv = credentials_to_environment(argv)
    _check(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _prepare()
    _launch(argv)
