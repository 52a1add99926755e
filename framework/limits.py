"""Budgets checked before heavy work: what a simulation or an archive will take in memory.

A run that cannot fit is refused in one line that says what to lower, instead of being killed by
the kernel's OOM killer mid-run (which leaves nothing but a RUNNING run behind). The limit is
``limits.memory_gb``; unset, three quarters of this machine's physical memory.

Archives are checked before they are opened: a ``.npz`` or ``.keras`` file is a zip, and a
1.5 MB zip can unpack to gigabytes. Their members' declared sizes are summed from the zip's
directory (nothing is decompressed) and refused beyond the same limit.
"""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from framework.errors import UserError

#: the share of physical memory a run may plan for when ``limits.memory_gb`` is unset
DEFAULT_SHARE = 0.75
#: the limit in force (bytes, under "bytes"); :func:`configure` sets it from the run's config
_LIMIT: dict[str, int] = {}


def physical_memory() -> int:
    """This machine's physical memory, bytes."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def configure(memory_gb: float | None) -> int:
    """Set the limit (GB; None: :data:`DEFAULT_SHARE` of physical memory); returns it in bytes."""
    _LIMIT["bytes"] = int(memory_gb * 1e9) if memory_gb else int(DEFAULT_SHARE * physical_memory())
    return _LIMIT["bytes"]


def limit() -> int:
    """The limit in force, bytes (the default until :func:`configure` is called)."""
    return _LIMIT.get("bytes") or int(DEFAULT_SHARE * physical_memory())


def human(n: float) -> str:
    """Bytes as a short text: ``2.1 TB``, ``350 MB``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def check_archive(path: Path, key: str) -> None:
    """Refuse a zip archive (``.npz``, ``.keras``) whose members would unpack beyond the limit.

    The sizes come from the zip's central directory; a member that lies about its size is
    caught by :mod:`zipfile` itself when read (it stops at the declared size).
    """
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not a zip, or damaged: the reader names the problem
    if total > limit():
        raise UserError(f"{key}: {path.name} would unpack to {human(total)}, more than the "
                        f"memory limit of {human(limit())} (limits.memory_gb)")


def simulation_bytes(n_samples: int, n_steps: int, n_features: int, minibatch: int,
                     neurons: int, n_outputs: int) -> int:
    """Memory a spiking evaluation plans for, bytes (float32 throughout).

    The inputs held over time for every sample (n_samples × n_steps × n_features), and per
    minibatch the probed outputs and input currents of every analysed neuron plus the network
    output over all steps, counted twice: once in TensorFlow, once as the NumPy copy returned.
    """
    inputs = n_samples * n_steps * n_features
    probes = min(minibatch, n_samples) * n_steps * (2 * neurons + n_outputs) * 2
    return 4 * (inputs + probes)


def check_simulation(n_samples: int, n_steps: int, n_features: int, minibatch: int,
                     neurons: int, n_outputs: int) -> None:
    """Refuse a simulation that would not fit, naming what to lower."""
    need = simulation_bytes(n_samples, n_steps, n_features, minibatch, neurons, n_outputs)
    if need > limit():
        raise UserError(f"simulation.n_steps: {n_samples} samples × {n_steps} steps of "
                        f"{neurons} neurons need about {human(need)}, more than the memory limit "
                        f"of {human(limit())} (limits.memory_gb); lower simulation.n_steps, "
                        f"simulation.minibatch_size or simulation.max_samples")


def _declared_bytes(member: IO[bytes]) -> int | None:
    """The bytes a ``.npy`` member's header declares (shape × item size), read from its header
    alone; None when it is not a ``.npy`` array (the reader names that)."""
    npy: Any = np.lib.format  # untyped in numpy's stubs
    try:
        version = npy.read_magic(member)
        shape, _, dtype = (npy.read_array_header_1_0(member) if version == (1, 0)
                           else npy.read_array_header_2_0(member))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        return None
    return math.prod(int(n) for n in shape) * int(dtype.itemsize)


def check_npz_members(path: Path, key: str) -> None:
    """Refuse an ``.npz`` whose arrays' headers declare more than the memory limit: numpy
    allocates what a header declares before it reads a byte, so a small file declaring a
    terabyte-sized shape ends in MemoryError (or the OOM killer)."""
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                with z.open(info) as member:
                    need = _declared_bytes(member)
                if need is not None and need > limit():
                    raise UserError(f"{key}: array {info.filename.removesuffix('.npy')!r} of "
                                    f"{path.name} declares {human(need)}, more than the memory "
                                    f"limit of {human(limit())} (limits.memory_gb)")
    except (zipfile.BadZipFile, OSError):
        return  # not a zip, or damaged: the reader names the problem
