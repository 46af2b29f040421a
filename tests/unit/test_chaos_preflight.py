"""The long chaos form restarts this machine's servers: it says up front when it
cannot, rather than failing after the run or restarting the wrong ones."""

import pytest

from tools.chaos import LONG, SHORT, infrastructure_restart_problems

LOCAL_DB = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP = "amqp://guest:guest@localhost:5672/"


def test_the_short_form_restarts_nothing_so_nothing_stops_it() -> None:
    assert (
        infrastructure_restart_problems(
            SHORT, database_url="postgresql://db.example/x", amqp_url=LOCAL_AMQP
        )
        == []
    )


def test_servers_elsewhere_are_named_instead_of_pretending_to_restart_them() -> None:
    problems = infrastructure_restart_problems(
        LONG,
        database_url="postgresql://postgres@db.internal:5432/orders",
        amqp_url="amqp://guest:guest@mq.internal:5672/",
    )

    assert problems == [
        "RabbitMQ is at mq.internal, not on this machine",
        "PostgreSQL is at db.internal, not on this machine",
    ]


def test_local_servers_take_root_to_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "tools.chaos.shutil.which", lambda command: f"/usr/sbin/{command}"
    )
    monkeypatch.setattr("tools.chaos.os.geteuid", lambda: 1000)

    problems = infrastructure_restart_problems(
        LONG, database_url=LOCAL_DB, amqp_url=LOCAL_AMQP
    )

    assert problems == ["restarting the local servers takes root"]

    monkeypatch.setattr("tools.chaos.os.geteuid", lambda: 0)
    assert (
        infrastructure_restart_problems(
            LONG, database_url=LOCAL_DB, amqp_url=LOCAL_AMQP
        )
        == []
    )
