"""Deep links into MLflow 3.17's UI, its base URL, MLflow's standard tags, and what spiketune-ui
prints (no TensorFlow; the browser test that opens these links is tests/test_browser.py)."""
from __future__ import annotations

import getpass
import subprocess

import pytest
from helpers import REPO, TINY, cli, runs

from framework.app import ui
from framework.errors import EXIT_USER, UserError
from framework.tracking import links as tracking_links
from framework.tracking import tags as tracking_tags

PID = "0123456789abcdef0123456789abcdef"


def test_links_have_mlflow_317s_route_and_model_training_mode():
    links = tracking_links.ui_links("http://127.0.0.1:5000", "7", "r1", PID)
    assert links == {
        "runs": "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning",
        "run": "http://127.0.0.1:5000/#/experiments/7/runs/r1?workflowType=machine_learning",
        # report.html in the run's artifact viewer (MLflow 3.17's route: artifactPath/*)
        "report": "http://127.0.0.1:5000/#/experiments/7/runs/r1/artifactPath/report.html"
                  "?workflowType=machine_learning",
        # the sweep's children, listed themselves: filtered on the parent tag, sorted by name
        "sweep": "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
                 "&searchFilter=tags.%60mlflow.parentRunId%60%20%3D%20%27" + PID + "%27"
                 "&orderByKey=tags.%60mlflow.runName%60&orderByAsc=true"}
    assert set(tracking_links.ui_links("http://h:1", "7")) == {"runs"}


def test_ui_base_precedence(monkeypatch):
    monkeypatch.delenv(tracking_links.UI_ENV, raising=False)
    assert tracking_links.ui_base("", "sqlite:////x/mlflow.db") == "http://127.0.0.1:5000"
    # a tracking server serves the UI itself
    assert tracking_links.ui_base("", "http://mlflow.lab:8080/") == "http://mlflow.lab:8080"
    monkeypatch.setenv(tracking_links.UI_ENV, "http://10.0.0.5:5001/")
    assert tracking_links.ui_base("", "http://mlflow.lab:8080") == "http://10.0.0.5:5001"
    assert tracking_links.ui_base("https://ui.lab/mlflow", "sqlite:////x") == "https://ui.lab/mlflow"


@pytest.mark.parametrize("value", ["ftp://host", "127.0.0.1:5000", "http://", "http://h/#/x"])
def test_bad_ui_url_names_the_key(value, monkeypatch):
    monkeypatch.delenv(tracking_links.UI_ENV, raising=False)
    with pytest.raises(UserError, match=r"^tracking\.ui_url: "):
        tracking_links.ui_base(value, "")
    monkeypatch.setenv(tracking_links.UI_ENV, value)
    with pytest.raises(UserError, match=rf"^{tracking_links.UI_ENV}: "):
        tracking_links.ui_base("", "")


@pytest.mark.parametrize("override, key", [("tracking.ui_url=localhost:5000", "tracking.ui_url"),
                                           ("tracking.register=lab/net", "tracking.register")])
def test_bad_tracking_value_exits_2_before_any_run(override, key, uri):
    proc = cli([*TINY, override], uri)
    assert proc.returncode == EXIT_USER, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"spiketune: {key}: "), lines[-3:]
    assert "Traceback" not in proc.stderr
    assert runs(uri)[1] == []  # refused before the run was created


def test_source_tags_are_mlflows_standard_ones():
    local, job = tracking_tags.source_tags(job=False), tracking_tags.source_tags(job=True)
    assert (local["mlflow.source.type"], job["mlflow.source.type"]) == ("LOCAL", "JOB")
    assert job["mlflow.source.name"] == "spiketune"
    assert local["mlflow.user"] == getpass.getuser()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert local["mlflow.source.git.commit"] == head
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True).stdout
    assert local["spiketune.git_dirty"] == str(bool(dirty.strip())).lower()
    base = tracking_tags.base_tags(job=False)
    # the contract's names stay, beside the namespaced and standard ones
    assert base["mlflow.source.git.commit"] == head
    assert base["spiketune.version"] == "0.1.0"
    assert "git_commit" not in base and "spiketune_version" not in base  # dropped duplicates


def test_markdown_table_escapes_pipes():
    assert tracking_links.markdown_table(["run", "mse"], [["a|b", "0.5"]]).splitlines() == [
        "| run | mse |", "| --- | ---: |", "| a\\|b | 0.5 |"]


def test_spiketune_ui_prints_links_to_the_runs_table_latest_run_and_sweep(store, monkeypatch,
                                                                           capsys):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    exp = client.create_experiment("spiketune")
    parent = client.create_run(exp, run_name="sweep seed (2 jobs)",
                               tags={"spiketune.sweep": "parent"})
    child = client.create_run(exp, run_name="seed=1",
                              tags={"mlflow.parentRunId": parent.info.run_id})
    calls = []
    monkeypatch.setattr(ui.os, "execv", lambda exe, argv: calls.append(argv))
    ui.main(["--uri", store, "--port", "5099"])
    err = capsys.readouterr().err
    base = "http://127.0.0.1:5099/#/experiments"
    assert f"{base}/{exp}/runs?workflowType=machine_learning\n" in err
    assert f"latest run (seed=1)  {base}/{exp}/runs/{child.info.run_id}?workflowType=" \
           f"machine_learning\n" in err
    assert f"latest sweep (sweep seed (2 jobs))  {base}/{exp}/runs?workflowType=" \
           f"machine_learning&searchFilter=tags.%60mlflow.parentRunId%60%20%3D%20%27" \
           f"{parent.info.run_id}%27" in err
    assert calls and calls[0][-6:] == ["--host", "127.0.0.1", "--port", "5099", "--app-name",
                                      "spiketune"]
    # an any-address bind is reached on the loopback; another experiment without runs says so
    ui.main(["--uri", store, "--host", "0.0.0.0", "--experiment", "other"])
    err = capsys.readouterr().err
    assert "on http://127.0.0.1:5000;" in err
    assert "experiment 'other' has no runs yet" in err


def test_the_served_page_opens_on_the_runs_on_a_first_visit():
    """MLflow's own landing page, through the app spiketune-ui serves, sets the model-training
    view before the UI's scripts run, only where the browser has no choice stored (the browser
    test, tests/test_browser.py, proves the view it lands on)."""
    from framework.app import mlflow_app

    page = mlflow_app.flask_app.test_client().get("/").get_data(as_text=True)
    head = page[:page.index("<script defer")]
    assert ("if(localStorage.getItem('mlflow.workflowType_v1')===null)"
            "localStorage.setItem('mlflow.workflowType_v1','\"machine_learning\"')") in head
    assert page.count("mlflow.workflowType") == 2  # one check, one set: nothing else changed
    from importlib.metadata import entry_points

    [hook] = [e for e in entry_points(group="mlflow.app") if e.name == "spiketune"]
    assert hook.value == "framework.app.mlflow_app:app"
