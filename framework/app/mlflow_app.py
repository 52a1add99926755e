"""The MLflow server app that ``spiketune-ui`` and ``spiketune-server`` serve: MLflow's own, whose
page opens on the runs (the model-training view) on a browser's first visit.

MLflow 3.17's UI keeps its view in the browser's local storage (``mlflow.workflowType``, stored by
its ``useLocalStorage`` hook as ``mlflow.workflowType_v1`` = ``"genai"`` unless set) and has no
server setting for it. So the served ``index.html`` carries a one-line script that sets that key
to ``"machine_learning"`` when the browser has none; a choice the user makes in the UI is kept.
The same script marks MLflow's assistant panel as already shown, so it does not cover a third of
the page on the first visit (it stays one click away). The browser test (tests/test_browser.py)
proves the landing page in a fresh profile, so an MLflow upgrade that renames a key fails there.

Served with ``mlflow server --app-name spiketune`` (the ``mlflow.app`` entry point in
pyproject.toml, MLflow's documented plugin hook for server apps).
"""
from __future__ import annotations

from typing import Any

from mlflow.server import app as flask_app  # MLflow's Flask app: the UI and the REST API
from mlflow.server.fastapi_app import app  # noqa: F401 - what uvicorn serves: MLflow's ASGI app

#: local-storage keys (MLflow's ``<key>_v<version>``, JSON values) set on a first visit only
FIRST_VISIT = {"mlflow.workflowType_v1": '"machine_learning"',
               "mlflow.assistant.panelOpen_v1": "false",
               "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
SCRIPT = ("<script>try{" + "".join(
    f"if(localStorage.getItem('{key}')===null)localStorage.setItem('{key}','{value}');"
    for key, value in FIRST_VISIT.items()) + "}catch(e){}</script>")

_serve: Any = flask_app.view_functions["serve"]


def serve() -> Any:
    """MLflow's landing page (``index.html``) with :data:`SCRIPT` at the top of its head, run
    before the UI's own scripts."""
    response: Any = _serve()
    if response.mimetype == "text/html":
        response.direct_passthrough = False  # a file response: read it to rewrite it
        page = response.get_data(as_text=True)
        response.set_data(page.replace("<head>", "<head>" + SCRIPT, 1))
    return response


# the ASGI app mounts this Flask app, which looks its views up per request
flask_app.view_functions["serve"] = serve
