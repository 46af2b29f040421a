"""The status frame: how one recorded event looks to a client.

The WebSocket pushes these frames and ``GET /api/orders/{id}/events`` lists them, so
a client reads one shape everywhere.
"""

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from shared.domain.envelope import EventEnvelope
from shared.domain.events import RouteSelected, SwapConfirmed

_INTERNAL_FIELDS = frozenset({"type", "signedTransaction", "orderId"})
# Written as every other timestamp of the API is (``…Z``), not as isoformat's
# ``+00:00``.
_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def status_frame(envelope: EventEnvelope) -> dict[str, Any]:
    event = envelope.event
    frame: dict[str, Any] = {
        "orderId": str(envelope.order_id),
        "status": envelope.status.value,
        "type": envelope.type,
        "version": envelope.stream_version,
        "position": envelope.global_position,
        "at": _TIME.dump_python(envelope.recorded_at, mode="json"),
    }
    fields = event.model_dump(mode="json", by_alias=True)
    frame.update({k: v for k, v in fields.items() if k not in _INTERNAL_FIELDS})
    if isinstance(event, SwapConfirmed):
        frame["venue"] = "+".join(leg.venue.value for leg in event.legs)
    elif isinstance(event, RouteSelected):
        frame["venue"] = "+".join(leg.venue.value for leg in event.plan.legs)
    return frame
