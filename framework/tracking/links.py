"""Deep links into MLflow 3.17's UI that every run and sweep prints, and the Markdown tables of run
descriptions."""
from __future__ import annotations

import os
from urllib.parse import quote, urlencode, urlsplit

from framework.errors import UserError

#: where ``spiketune-ui`` serves the MLflow UI unless told otherwise
UI_DEFAULT = "http://127.0.0.1:5000"
#: environment variable naming the UI's base URL (``tracking.ui_url`` wins over it)
UI_ENV = "SPIKETUNE_UI_URL"
#: MLflow 3.17's UI opens an experiment on its GenAI pages (traces, token usage) unless the URL asks
#: for the model-training mode; its WorkflowTypeProvider reads this query parameter
ML_MODE = "workflowType=machine_learning"
#: every run's report artifact (framework/report_html.py), at the root of its artifacts
REPORT = "report.html"


def ui_base(ui_url: str = "", uri: str = "") -> str:
    """The MLflow UI's base URL for printed links.

    Parameters
    ----------
    ui_url : str
        ``tracking.ui_url``; wins when given.
    uri : str
        The tracking URI: an http(s) tracking server serves the UI itself.

    Returns
    -------
    str
        ``tracking.ui_url``, else ``$SPIKETUNE_UI_URL``, else the http(s) tracking server, else
        :data:`UI_DEFAULT` (where ``spiketune-ui`` serves it); without a trailing slash.

    Raises
    ------
    UserError
        Naming ``tracking.ui_url`` or ``SPIKETUNE_UI_URL`` when it is not an http(s) URL.
    """
    for value, key in ((ui_url, "tracking.ui_url"), (os.environ.get(UI_ENV, ""), UI_ENV)):
        value = (value or "").strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment \
                or parts.query:
            raise UserError(f"{key}: {value!r} is not the UI's base URL; give http(s)://host:port"
                            f" (e.g. {UI_DEFAULT})")
        return value.rstrip("/")
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return UI_DEFAULT


def ui_links(base: str, experiment_id: str, run_id: str = "",
             parent_run_id: str = "") -> dict[str, str]:
    """Deep links into MLflow 3.17's UI (a hash router), all in its model-training mode.

    Parameters
    ----------
    base : str
        The UI's base URL (:func:`ui_base`).
    experiment_id : str
    run_id : str, optional
        A run: adds ``run``, its page.
    parent_run_id : str, optional
        A sweep's parent run: adds ``sweep``, the runs table showing that sweep's children, sorted
        by name. The UI nests children under their parent, collapsed, and fetches the parents of
        what a filter matches unless the table is sorted by something other than start time; so
        the filter on the parent tag with a sort by run name lists the children themselves.

    Returns
    -------
    dict
        ``runs`` (the experiment's runs table), and ``run`` / ``report`` (its ``report.html``,
        open in the artifact viewer) / ``sweep`` when asked for.
    """
    table = f"{base}/#/experiments/{experiment_id}/runs"
    links = {"runs": f"{table}?{ML_MODE}"}
    if run_id:
        links["run"] = f"{table}/{run_id}?{ML_MODE}"
        links["report"] = f"{table}/{run_id}/artifactPath/{REPORT}?{ML_MODE}"
    if parent_run_id:
        query = urlencode({"searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                           "orderByKey": "tags.`mlflow.runName`", "orderByAsc": "true"},
                          quote_via=quote)
        links["sweep"] = f"{table}?{ML_MODE}&{query}"
    return links


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """``rows`` under ``head`` as a Markdown table (the UI renders descriptions as Markdown); the
    first column left-aligned, the others (numbers) right-aligned."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in head) + " |",
             "| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
