"""Order streams on top of the event store: load, decide, append.

This is how every handler changes an order: read the stream, fold it, let a pure
``decide`` function say what happens, append with the version that was read.
Event ids are deterministic per (order, event type, attempt), so a duplicate or
racing decision is an idempotent no-op rather than a second fact.

A handler that takes two steps in a row (the router records ``RoutingStarted``,
quotes, then records ``RouteSelected``) decides the second on the ``KnownOrder``
the first returned instead of reading the stream again; the append's expected
version still guards it, and a stale copy makes the decision reload.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from uuid import UUID

from shared.domain.envelope import Cause, EventEnvelope, NewEvent, event_id_for
from shared.domain.events import OrderEvent, OrderFailed
from shared.domain.order import OrderState, evolve, replay
from shared.eventstore.port import EventStore, WrongExpectedVersionError
from shared.logging import annotate
from shared.metrics import observe_recorded

Decide = Callable[[OrderState], list[OrderEvent]]

_CONFLICT_RETRIES = 5


def attempt_of(event: OrderEvent) -> int:
    if isinstance(event, OrderFailed):
        return event.failed_attempt
    return getattr(event, "attempt", 0)


class OrderNotFoundError(Exception):
    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} not found")
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class KnownOrder:
    """An order as this handler last read or recorded it.

    ``recorded_at`` holds when each event type was last recorded: from the store,
    or this process's clock for the events it appended itself (stage latencies
    need no more precision than that).
    """

    state: OrderState
    recorded_at: Mapping[str, datetime]

    @classmethod
    def of(cls, history: Iterable[EventEnvelope]) -> "KnownOrder | None":
        """Fold a stream as read; None when it is empty."""
        envelopes = list(history)
        state = replay(envelope.event for envelope in envelopes)
        if state is None:
            return None
        recorded_at = {envelope.type: envelope.recorded_at for envelope in envelopes}
        return cls(state, MappingProxyType(recorded_at))

    def after(self, events: Iterable[OrderEvent], at: datetime) -> "KnownOrder":
        state = self.state
        recorded_at = dict(self.recorded_at)
        for event in events:
            state = evolve(state, event)
            recorded_at[event.type] = at
        return KnownOrder(state, MappingProxyType(recorded_at))


class Orders:
    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def history(self, order_id: UUID) -> list[EventEnvelope]:
        return await self._store.read_stream(order_id)

    async def read(self, order_id: UUID) -> KnownOrder | None:
        return KnownOrder.of(await self._store.read_stream(order_id))

    async def decide(
        self,
        order_id: UUID,
        decide: Decide,
        *,
        cause: Cause,
        known: KnownOrder | None = None,
    ) -> tuple[KnownOrder, list[OrderEvent]]:
        """Apply ``decide`` to the current state and record what it returns.

        Returns the order as now known and the events this call recorded (empty
        when the step had already been taken). ``known``, when the caller has
        just read or recorded the order, saves reading it again; the append's
        expected version still guards it. A concurrent writer makes it reload
        and decide again, and so does one that recorded the same step first: the
        state returned is then the recorded one, never this call's own copy of
        the step.
        """
        last_conflict: WrongExpectedVersionError | None = None
        for _ in range(_CONFLICT_RETRIES):
            order = known if known is not None else await self.read(order_id)
            known = None
            if order is None:
                raise OrderNotFoundError(order_id)
            state = order.state
            events = decide(state)
            if not events:
                return order, []
            new_events = [
                NewEvent(
                    event_id=event_id_for(order_id, event.type, attempt_of(event)),
                    event=event,
                    correlation_id=cause.correlation_id,
                    causation_id=cause.event_id,
                )
                for event in events
            ]
            try:
                appended = await self._store.append(
                    order_id, new_events, expected_version=state.version
                )
            except WrongExpectedVersionError as conflict:
                last_conflict = conflict
                continue
            if appended.replayed:
                # Another writer recorded this very step first, perhaps with other
                # content (another signed transaction): reload and act on that.
                continue
            # Outcomes are counted here, where they are recorded, not by replaying.
            now = datetime.now(UTC)
            observe_recorded(order.recorded_at, events, now)
            annotate(recorded=[event.type for event in events])
            return order.after(events, now), events
        # Every try lost to another writer (or found its step recorded by one):
        # the caller's delivery retries, then requeues for another replica.
        if last_conflict is not None:
            raise last_conflict
        raise WrongExpectedVersionError(order_id, state.version, state.version + 1)
