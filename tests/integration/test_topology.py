"""The broker's topology as every service declares it at start."""

import pytest

from shared.messaging.topology import Topology, TopologyMismatchError, declare_topology
from shared.service.runtime import make_broker
from shared.settings import Settings
from tools.broker import delete_namespace

pytestmark = pytest.mark.integration


async def test_a_changed_delivery_limit_is_refused_naming_the_setting(
    settings: Settings,
) -> None:
    """The work queues carry DELIVERY_LIMIT from when they were created: a
    service started with another one cannot declare them, and says which setting
    to set back rather than only the broker's PRECONDITION_FAILED."""
    namespace = f"{settings.broker_namespace}-limit"
    broker = make_broker(settings, prefetch=1)
    await broker.connect()
    try:
        await declare_topology(broker, Topology(namespace, delivery_limit=5))
        with pytest.raises(TopologyMismatchError) as refused:
            await declare_topology(broker, Topology(namespace, delivery_limit=7))
    finally:
        await broker.stop()
        delete_namespace(settings.amqp_url, namespace)

    assert f"queue {namespace}." in str(refused.value)
    assert "DELIVERY_LIMIT" in str(refused.value)
    assert "received '7' but current is '5'" in str(refused.value)
