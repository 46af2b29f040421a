"""The short chaos form: replicas, faults and kill -9's, then a clean audit."""

import pytest

from tests.conftest import RUN_ID
from tools.chaos import SHORT, run_chaos

pytestmark = pytest.mark.integration


async def test_the_system_survives_kills_and_faults_without_losing_an_order(
    infrastructure: tuple[str, str],
) -> None:
    """200 orders, injected faults, 5 random kill -9's: every order ends, none twice."""
    server_url, amqp_url = infrastructure

    report = await run_chaos(
        SHORT, server_url=server_url, amqp_url=amqp_url, tag=f"t{RUN_ID}"
    )

    print(report.table())  # noqa: T201 - the table is the point of this test's output
    assert report.accepted == SHORT.orders
    assert report.in_store == report.accepted
    assert report.terminal == report.accepted, report.not_terminal
    assert report.invalid_replays == []
    assert report.double_swaps == []
    assert report.confirmed_without_swap == []
    assert report.failed_with_swap == []
    assert not any(report.ws_anomalies.values()), report.ws_anomalies
    assert report.ws_incomplete == 0
    assert report.events_published == report.events_appended
    assert len(report.kills) == SHORT.kills
