"""Keyset paging of the order list: a cursor is the last row's place in the order.

Newest first means ``(created_at, order_id)`` descending; the order id breaks
ties between orders created in the same microsecond, so a page boundary never
skips or repeats an order, however many arrive meanwhile (they sort before the
first page). The cursor is opaque to clients: base64url of that pair.
"""

import base64
import binascii
from datetime import datetime
from uuid import UUID

ListPlace = tuple[datetime, UUID]


def cursor_after(place: ListPlace) -> str:
    created_at, order_id = place
    raw = f"{created_at.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def place_of(cursor: str) -> ListPlace:
    """Raise ValueError for anything ``cursor_after`` did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, order_id = raw.split("|")
        place = datetime.fromisoformat(created_at), UUID(order_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ValueError("not a cursor this API returned (nextCursor)") from error
    if place[0].tzinfo is None:
        raise ValueError("not a cursor this API returned (nextCursor)")
    return place
