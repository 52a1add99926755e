"""What ``spiketune-server`` and ``framework.app.slurm_cluster`` share about the daemons they start:
whether a process or a process group still runs, whether a port is free, a log's telling line."""
from __future__ import annotations

import os
import socket
from pathlib import Path

#: a unix socket's path is limited to 107 bytes on Linux (sun_path)
MAX_SOCKET_PATH = 107
EXIT_NOT_RUNNING = 3  # `status` of something that is not running (the LSB init-script convention)


def proc_state(pid: int) -> tuple[str, int, str] | None:
    """``(state letter, process group, name)`` of ``pid`` from /proc, or None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = stat.split("(", 1)[1].rsplit(")", 1)  # the name may hold spaces and parentheses
    fields = rest.split()
    return fields[0], int(fields[2]), name


def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def alive(pid: int, name: str = "") -> bool:
    """``pid`` runs, and is called ``name`` when given (a reused pid is another program); a
    zombie, ended but not yet reaped by init, does not count."""
    if _has_proc():
        state = proc_state(pid)
        return state is not None and state[0] not in ("Z", "X") and \
            (not name or state[2] == name[:15])
    try:  # no /proc (macOS): the kernel's word, zombies included
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Any process of group ``pgid`` still runs (zombies excluded)."""
    if _has_proc():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                state = proc_state(int(entry.name))
                if state is not None and state[1] == pgid and state[0] not in ("Z", "X"):
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_free(host: str, port: int) -> bool:
    """Nobody listens on ``host:port``, as a server binding it would see it (SO_REUSEADDR: a port
    whose last connections linger in TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def telling_line(text: str) -> str:
    """The line of a log or an output that says what went wrong: the last one naming an error or
    a fatal condition, else the last line; at most 300 characters."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "fatal" in ln.lower() or "error" in ln.lower()]
    return (errors or lines or ["(no output)"])[-1][:300]
