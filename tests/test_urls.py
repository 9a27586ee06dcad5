from __future__ import annotations

import pytest

from nnsweep.urls import mask_url, secrets_of

CASES = [
    (
        "postgresql+psycopg://bob:hunter2@db:5432/optuna",
        "postgresql+psycopg://bob:***@db:5432/optuna",
    ),
    ("http://u:p%40ss@mlflow:5000", "http://u:***@mlflow:5000"),
    ("sqlite:///optuna.db", "sqlite:///optuna.db"),
    ("mysql://db/x?password=abc&user=y", "mysql://db/x?password=***&user=y"),
    (
        "error: could not connect to postgresql://a:b@h/d: refused",
        "error: could not connect to postgresql://a:***@h/d: refused",
    ),
]


@pytest.mark.parametrize(("raw", "masked"), CASES)
def test_mask_url(raw: str, masked: str) -> None:
    assert mask_url(raw) == masked


def test_secrets_of() -> None:
    assert secrets_of("postgresql://bob:hunter2@db/x") == ["hunter2"]
    assert secrets_of("sqlite:///x.db") == []
