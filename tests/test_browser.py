"""The printed links in a real browser: a real 2-job sweep, the MLflow UI as ``spiketune-ui``
starts it, and Debian's chromium driven headless by Playwright.

Skips, with the reason, where ``/usr/bin/chromium`` or the playwright package is missing (CI's
``.ci/run`` installs chromium). Playwright never downloads a browser here: it is handed Debian's.
``SPIKETUNE_SCREENSHOTS=<folder>`` keeps the screenshots (else they go to the test's tmp folder,
printed at the end). Each page is a new browser context: a fresh profile, empty local storage.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import TINY, cli, runs

CHROMIUM = Path("/usr/bin/chromium")
#: headless, and nothing that reaches out of the machine (it has no internet at run time)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser: {CHROMIUM} is missing "
                       "(apt-get install chromium; .ci/run does it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until ``url`` answers 200 (the server is up), or fail with the server's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the MLflow UI exited {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the MLflow UI did not answer at {url} within {timeout:.0f} s")


@pytest.fixture
def shots(tmp_path) -> Path:
    out = Path(os.environ.get("SPIKETUNE_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_printed_sweep_link_opens_the_runs_table_with_the_children(uri, tmp_path, shots):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is "
                                   "not installed (it is in the lock: make test installs it)")
    from framework.app import ui
    from framework.tracking.store import open_store

    port = free_port()
    open_store(uri)  # the schema exists before the server and the sweep both open the store
    log = open(tmp_path / "ui.log", "w")
    # the server spiketune-ui would exec, started beside the sweep (it imports no TensorFlow)
    server = subprocess.Popen(ui.command("127.0.0.1", port, uri), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc = cli(["-m", *TINY, "analysis=[firing]", "neuron=lif,relu",
                    f"tracking.ui_url=http://127.0.0.1:{port}",
                    "hydra.callbacks.sweep.compare=false",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], uri,
                   env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
        assert proc.returncode == 0, proc.stderr[-3000:]
        sweep_link = re.search(r"^\[sweep\]   sweep runs  (\S+)$", proc.stderr, re.M).group(1)
        run_link = re.search(r"^\[job 1\]   run         (\S+)$", proc.stderr, re.M).group(1)
        parent_link = re.search(r"^\[sweep\]   parent run  (\S+)$", proc.stderr, re.M).group(1)
        assert sweep_link.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        _, found = runs(uri)
        names = sorted(r.info.run_name for r in found if "mlflow.parentRunId" in r.data.tags)
        assert names == ["lif", "relu"]
        wait_for(f"http://127.0.0.1:{port}/", server)

        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                # a first visit (a fresh profile) to / and a click on the experiment: the runs
                # table, not MLflow's GenAI pages (framework/app/mlflow_app.py)
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_role("link", name="spiketune", exact=True).first.click(
                    timeout=90_000)
                page.get_by_role("link", name="sweep neuron (2 jobs)").first.wait_for(
                    timeout=90_000)
                assert "workflowType=genai" not in page.url
                assert "Traces" not in page.get_by_role("main").inner_text()[:200]
                page.screenshot(path=str(shots / "first_visit_runs.png"))
                page.close()

                page = browser.new_page(viewport={"width": 1600, "height": 900})
                page.goto(sweep_link)
                # the runs table (not the GenAI traces page), each child by its name
                for name in names:
                    page.get_by_role("link", name=name, exact=True).first.wait_for(
                        timeout=90_000)
                page.get_by_text("2 matching runs").wait_for(timeout=30_000)
                body = page.inner_text("body")
                assert "Sort: Run Name" in body
                assert "Traces" not in page.get_by_role("main").inner_text()[:200]
                page.screenshot(path=str(shots / "sweep_runs.png"))

                # one child's page: its parent named by what the sweep varies, its source and
                # commit, its description with the headline metrics
                page.goto(run_link)
                page.get_by_role("link", name="sweep neuron (2 jobs)").wait_for(timeout=90_000)
                note = page.get_by_test_id("note-editor-preview-content")
                note.get_by_role("cell", name="spiking/angle_error_deg").wait_for(timeout=30_000)
                note.scroll_into_view_if_needed()
                text = note.inner_text()
                assert text.startswith("relu: dataset reach, model dense, neuron relu"), text
                assert "`" not in text  # rendered as Markdown, not shown raw
                assert "Model training" in page.inner_text("body")
                page.screenshot(path=str(shots / "child_run.png"))

                # report.html inline in the artifact viewer: the sweep's parent and a child
                for link, shot, says in ((parent_link, "parent_report.png", "Best setting"),
                                         (run_link, "child_report.png", "Headline metrics")):
                    page = browser.new_page(viewport={"width": 1600, "height": 900})
                    page.goto(link.replace("?", "/artifactPath/report.html?", 1))
                    frame = page.frame_locator("iframe.mlflow-html-iframe")
                    try:
                        frame.get_by_text(says, exact=True).first.wait_for(timeout=90_000)
                    finally:
                        page.screenshot(path=str(shots / shot))
                    assert frame.get_by_text("Verdict").count() or "Best" in says
                print(f"screenshots: {shots}")
            finally:
                browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
