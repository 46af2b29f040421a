"""The executor's set of orders in flight never passes over an event it needs.

A read model can show an order without an event it cannot read; this set cannot:
without a ``TransactionSubmitted`` a crashed executor's signature would go
unreconciled, without an outcome an order would be reconciled again.
"""

import dataclasses
import json
from typing import cast

import pytest

from executor.in_flight import InFlight
from shared.domain.events import OrderEvent, OrderFailed
from shared.domain.retry import FailureClass
from shared.eventstore.checkpoints import Checkpoints
from shared.eventstore.pool import Pool
from shared.eventstore.port import RawEvent
from shared.eventstore.unknown import UnreadableEventError
from tests.unit.order_events import confirmed, recorded, retry, submitted


def _with_a_field_of_a_newer_release(event: OrderEvent) -> RawEvent:
    raw = RawEvent.of(recorded(7, event=event))
    envelope = json.loads(raw.envelope_json)
    envelope["event"]["feePayer"] = "payer-2"
    return dataclasses.replace(raw, envelope_json=json.dumps(envelope))


@pytest.mark.parametrize(
    "event",
    [
        submitted(1),
        confirmed(1),
        retry(2),
        OrderFailed(
            failed_attempt=1, failure=FailureClass.BLOCKHASH_EXPIRED, reason="expired"
        ),
    ],
    ids=lambda event: event.type,
)
async def test_a_newer_shape_of_an_event_it_needs_stops_it_naming_the_event(
    event: OrderEvent,
) -> None:
    # Stopped before it writes: no pool or checkpoint is ever reached.
    in_flight = InFlight(pool=cast("Pool", None), checkpoints=cast("Checkpoints", None))

    with pytest.raises(UnreadableEventError, match=f"{event.type} at global position"):
        await in_flight.apply([_with_a_field_of_a_newer_release(event)])
