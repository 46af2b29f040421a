"""The status frame: how one recorded event looks to a client.

The WebSocket pushes these frames and ``GET /api/orders/{id}/events`` lists them, so
a client reads one shape everywhere.
"""

from typing import Any

from shared.domain.envelope import EventEnvelope
from shared.domain.events import RouteSelected, SwapConfirmed

_INTERNAL_FIELDS = frozenset({"type", "signedTransaction", "orderId"})


def status_frame(envelope: EventEnvelope) -> dict[str, Any]:
    event = envelope.event
    frame: dict[str, Any] = {
        "orderId": str(envelope.order_id),
        "status": envelope.status.value,
        "type": envelope.type,
        "version": envelope.stream_version,
        "position": envelope.global_position,
        "at": envelope.recorded_at.isoformat(),
    }
    fields = event.model_dump(mode="json", by_alias=True)
    frame.update({k: v for k, v in fields.items() if k not in _INTERNAL_FIELDS})
    if isinstance(event, SwapConfirmed):
        frame["venue"] = "+".join(leg.venue.value for leg in event.legs)
    elif isinstance(event, RouteSelected):
        frame["venue"] = "+".join(leg.venue.value for leg in event.plan.legs)
    return frame
