"""Credentials in a tracking URI are masked in everything spiketune records (framework/redact.py).

The end-to-end check, a real run on a PostgreSQL store opened with its real password, is in
tests/test_server.py (it needs the server's database)."""
from __future__ import annotations

import logging

import pytest

from framework.redact import MASK, RedactFilter, has_secret, redact, redact_files, split_credentials


@pytest.mark.parametrize("text, expected", [
    ("postgresql://ada:s3cret@db:5432/mlflow", "postgresql://ada:***@db:5432/mlflow"),
    ("postgresql+psycopg2://mlflow:ab12@/mlflow?host=/srv/pg&port=5432",
     "postgresql+psycopg2://mlflow:***@/mlflow?host=/srv/pg&port=5432"),
    ("https://u:p%40ss@mlflow.lab/x", "https://u:***@mlflow.lab/x"),
    ("seed=1 tracking.uri=mysql+pymysql://root:pw@127.0.0.1/db tags=[a]",
     "seed=1 tracking.uri=mysql+pymysql://root:***@127.0.0.1/db tags=[a]"),
    ("http://h:5000/?token=zz&x=1", "http://h:5000/?token=***&x=1"),
    ("uri: 'http://a:b@h' # quoted", "uri: 'http://a:***@h' # quoted"),
    # issue 23: as Hydra writes an override back (a sweep child's spiketune.overrides tag)
    ("tracking.uri=http\\://bob\\:pw@host:5000 seed=1",
     "tracking.uri=http\\://bob\\:***@host:5000 seed=1"),
    ("x?password\\=pw1", "x?password\\=***"),
    # every query key that ends in a secret's word, not only the bare word
    ("https://h/?client_secret=c1&sas_token=t1&sv=2021&sig=s1",
     "https://h/?client_secret=***&sas_token=***&sv=2021&sig=***"),
    ("PGPASSWORD=pw2 psql", "PGPASSWORD=*** psql"),
    ("sqlite:////tmp/a.db?password=pw3", "sqlite:////tmp/a.db?password=***"),
])
def test_passwords_are_masked(text, expected):
    assert redact(text) == expected
    assert has_secret(text) and not has_secret(expected)
    assert redact(expected) == expected  # masking twice changes nothing


@pytest.mark.parametrize("text", [
    "sqlite:////tmp/outputs/mlflow.db", "http://127.0.0.1:5000/#/experiments/1/runs/abc",
    "http://user@host:5000/path",  # a user name alone is no secret
    "git@github.com:lab/net.git", "ada@lab.org", "simulation.n_steps=50 seed=3",
    "postgresql://mlflow@/mlflow?host=/srv/pg&port=5432",
    "max_tokens=3 design=2 objective=spiking/accuracy",  # words that merely contain one
])
def test_text_without_a_secret_is_left_alone(text):
    assert redact(text) == text


def test_the_log_filter_masks_records_formatted_with_arguments():
    record = logging.LogRecord("hydra", logging.INFO, __file__, 1, "#%d : %s", (0,
                               "tracking.uri=https://ada:s3cret@h seed=1"), None)
    assert RedactFilter().filter(record)
    assert record.getMessage() == f"#0 : tracking.uri=https://ada:{MASK}@h seed=1"


def test_saved_configs_are_masked_in_place(tmp_path):
    (tmp_path / "overrides.yaml").write_text("- tracking.uri=postgresql://a:pw1@h/db\n- seed=2\n")
    (tmp_path / "config.yaml").write_text("seed: 2\n")
    assert redact_files(tmp_path) == 1
    assert (tmp_path / "overrides.yaml").read_text() == \
        "- tracking.uri=postgresql://a:***@h/db\n- seed=2\n"
    assert (tmp_path / "config.yaml").read_text() == "seed: 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "overrides.yaml"]
    assert redact_files(tmp_path / "missing") == 0


@pytest.mark.parametrize("uri, expected", [
    ("https://bob:p%40ss@mlflow.lab:5000/x", ("https://mlflow.lab:5000/x", "bob", "p@ss")),
    ("http://:tok@127.0.0.1:5000", ("http://127.0.0.1:5000", "", "tok")),
    ("http://bob@127.0.0.1:5000", None),  # no password: nothing to move
    ("postgresql://a:pw@h/db", None),  # a database's password stays (masked) in its URI
    ("sqlite:////tmp/a.db", None),
])
def test_a_servers_credentials_split_from_its_uri(uri, expected):
    assert split_credentials(uri) == expected
