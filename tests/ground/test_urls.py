from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from nnsweep.urls import (
    forget_secrets,
    known_secrets,
    mask_url,
    remember_secrets,
    scrub,
    secrets_of,
)

CASES = [
    (
        "postgresql+psycopg://bob:hunter2@db:5432/optuna",
        "postgresql+psycopg://bob:***@db:5432/optuna",
    ),
    ("http://u:p%40ss@mlflow:5000", "http://u:***@mlflow:5000"),
    ("sqlite:///optuna.db", "sqlite:///optuna.db"),
    ("journal:///optuna.log", "journal:///optuna.log"),
    ("mysql://db/x?password=abc&user=y", "mysql://db/x?password=***&user=y"),
    (
        "error: could not connect to postgresql://a:b@h/d: refused",
        "error: could not connect to postgresql://a:***@h/d: refused",
    ),
    (
        "postgresql://a:bbb@h/d and mysql://c:ddd@e/f",
        "postgresql://a:***@h/d and mysql://c:***@e/f",
    ),
    ("https://user:tok@host/api?a=1#top", "https://user:***@host/api?a=1#top"),
]


@pytest.mark.parametrize(("raw", "masked"), CASES)
def test_mask_url(raw: str, masked: str) -> None:
    assert mask_url(raw) == masked


# Passwords typed into a URL unencoded, and secrets in query parameters.
HOSTILE = {
    "slash": ("postgresql://bob:{pw}@db:5432/optuna", "p/w0rd"),
    "space": ("postgresql+psycopg://bob:{pw}@db/optuna", "p w0rd"),
    "at": ("postgresql://bob:{pw}@db/optuna", "p@w0rd"),
    "colon": ("postgresql://bob:{pw}@db/optuna", "p:w0rd"),
    "at and space": ("postgresql://bob:{pw}@db/optuna", "p@w 0rd"),
    "all of them": ("mysql+pymysql://bob:{pw}@db:3306/x", "a/b c@d:e"),
    "percent-encoded @": ("postgresql://bob:{pw}@db/optuna", "p%40w0rd"),
    "http userinfo": ("https://bob:{pw}@mlflow.example:443/", "to/k@n"),
    "sslpassword": ("postgresql://bob@db/optuna?sslmode=require&sslpassword={pw}", "k3y-pass"),
    "password query": ("mysql://db/x?password={pw}&user=y", "s3cr3t"),
    "query with space": ("postgresql://db/x?sslpassword={pw}", "two words"),
    "token query": ("https://mlflow.example/?access_token={pw}", "tok123"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("where", ["alone", "in a message"])
def test_hostile_passwords_are_masked(case: str, where: str) -> None:
    template, password = HOSTILE[case]
    url = template.format(pw=password)
    text = url if where == "alone" else f"cannot connect to {url}: connection refused"
    masked = mask_url(text)
    assert "***" in masked
    for part in {password, *password.replace("%40", "@").split()}:
        if len(part) > 2:
            assert part not in masked, masked
    host = url.split("@")[-1].split("/")[0] if "@" in url else ""
    assert host in masked  # where it points stays readable
    assert password in secrets_of(url) or password.replace("%40", "@") in secrets_of(url)


def test_secrets_of() -> None:
    assert secrets_of("postgresql://bob:hunter2@db/x") == ["hunter2"]
    assert secrets_of("sqlite:///x.db") == []
    assert "p w" in secrets_of("postgresql://bob:p w@db/x")


@pytest.fixture
def remembered() -> Iterator[None]:
    yield
    forget_secrets()


def test_known_secrets_come_from_options_and_the_environment() -> None:
    args = ["status", "--storage", "postgresql://u:from-arg@h/d", "--tracking-uri=mysql://u:eq@h/d"]
    env = {
        "MLFLOW_TRACKING_URI": "https://u:from-env@mlflow/",
        "MLFLOW_TRACKING_PASSWORD": "plain-secret",
        "HOME": "/root",
    }
    found = known_secrets(args, env)
    assert {"from-arg", "eq", "from-env", "plain-secret"} <= set(found)
    assert "/root" not in found


def test_remembered_secrets_are_scrubbed_from_texts_and_log_lines(
    remembered: None, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "c0rrect horse"
    text = f"driver said: password authentication failed (password '{secret}')"
    assert secret in mask_url(text)  # outside a URL only a known secret can be found
    remember_secrets(known_secrets([], {"NNSWEEP_STORAGE": f"postgresql://u:{secret}@h/d"}))
    assert secret not in mask_url(text) and "***" in mask_url(text)
    assert scrub(f"quoted: {secret.replace(' ', '%20')}") == "quoted: ***"
    with caplog.at_level(logging.WARNING):
        logging.getLogger("nnsweep.test").warning("trial 3: model not logged (%s)", text)
    assert secret not in caplog.text and "***" in caplog.text
    forget_secrets()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("nnsweep.test").warning("again: %s", text)
    assert secret in caplog.records[-1].getMessage()
