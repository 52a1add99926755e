"""Credentials never leave the process: passwords in URIs are replaced by ``***`` wherever
spiketune writes text (MLflow params, tags and config artifacts, the terminal, the job's log,
Hydra's saved configs).

A tracking URI may carry credentials: ``postgresql://user:secret@host/db`` (a database store) or
``https://user:secret@mlflow.lab`` (a server behind basic auth). MLflow needs them to connect, so
the URI spiketune connects with keeps them; everything it *records* goes through :func:`redact`.
The better route leaves them out of the config altogether: ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` for a server, ``PGPASSWORD`` or ``~/.pgpass`` for PostgreSQL
(docs/bad-inputs.md).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
#: ``scheme://user:password@``: the password part (user names stay: they say whose store it is);
#: also as Hydra writes an override back (``http\://bob\:pw@h``: its ``:`` escaped, and again
#: in JSON)
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*\\*://[^\s:/@'\"\\]*\\*:)"
                       r"(?P<secret>[^\s@/'\"]+)@")
#: ``?password=...``, ``&client_secret=...``, ``sas_token=...``, ``&sig=...`` in a query string,
#: ``PGPASSWORD=...``-like assignments: any key that ends in one of these words (Hydra's
#: ``\=`` too)
_QUERY = re.compile(r"(?P<head>(?<![A-Za-z0-9])[A-Za-z0-9_\-]*?(?:password|passwd|pwd|"
                    r"token|secret|api_?key|credentials?|sig|signature)\\*=)"
                    r"(?P<secret>[^\s&;'\"\\]+)", re.IGNORECASE)


#: where MLflow's client takes a tracking server's basic-auth credentials from
SERVER_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def split_credentials(uri: str) -> tuple[str, str, str] | None:
    """``(uri, user, password)``: an http(s) URI without its ``user:password@``, and the two
    (decoded); None when ``uri`` is not one or carries no password.

    >>> split_credentials("https://bob:p%40ss@mlflow.lab:5000/x")
    ('https://mlflow.lab:5000/x', 'bob', 'p@ss')
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or parts.password is None:
        return None
    host = parts.netloc.rsplit("@", 1)[1]
    return (urlunsplit(parts._replace(netloc=host)), unquote(parts.username or ""),
            unquote(parts.password))


def redact(text: str) -> str:
    """``text`` with the password of every URI (and ``password=``-like values) masked.

    >>> redact("postgresql://ada:s3cret@db:5432/mlflow")
    'postgresql://ada:***@db:5432/mlflow'
    """
    if not isinstance(text, str) or ("@" not in text and "=" not in text):
        return text
    text = _USERINFO.sub(lambda m: m["head"] + MASK + "@", text)
    return _QUERY.sub(lambda m: m["head"] + MASK, text)


def has_secret(text: str) -> bool:
    """Whether :func:`redact` would change ``text``."""
    return redact(text) != text


class RedactFilter(logging.Filter):
    """A logging filter that masks credentials in every record it passes (used by the job and
    Hydra log handlers in conf/hydra/*_logging/spiketune.yaml: Hydra logs each job's overrides)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def redact_files(folder: Path, pattern: str = "*.yaml") -> int:
    """Mask credentials in place in the files matching ``pattern`` under ``folder`` (Hydra's
    ``.hydra/config.yaml``, ``overrides.yaml``, ``hydra.yaml``, a sweep's ``multirun.yaml``,
    written by Hydra before spiketune runs). Returns how many files changed."""
    changed = 0
    for path in sorted(Path(folder).glob(pattern)) if Path(folder).is_dir() else []:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        masked = redact(text)
        if masked != text:  # by rename: parallel jobs of a sweep mask one multirun.yaml
            tmp = path.with_name(f".{path.name}.{os.getpid()}.redact")
            tmp.write_text(masked)
            os.replace(tmp, path)
            changed += 1
    return changed
