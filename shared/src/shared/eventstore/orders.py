"""Order streams on top of the event store: load, decide, append.

This is how every handler changes an order: read the stream, fold it, let a pure
``decide`` function say what happens, append with the version that was read.
Event ids are deterministic per (order, event type, attempt), so a duplicate or
racing decision is an idempotent no-op rather than a second fact.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
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


class Orders:
    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def history(self, order_id: UUID) -> list[EventEnvelope]:
        return await self._store.read_stream(order_id)

    async def load(self, order_id: UUID) -> OrderState | None:
        return replay(
            envelope.event for envelope in await self._store.read_stream(order_id)
        )

    async def decide(
        self,
        order_id: UUID,
        decide: Decide,
        *,
        cause: Cause,
        history: Sequence[EventEnvelope] | None = None,
    ) -> tuple[OrderState, list[OrderEvent]]:
        """Apply ``decide`` to the current state and record what it returns.

        Returns the new state and the events this call recorded (empty when the
        step had already been taken). ``history``, when the caller has just read
        the stream, saves reading it again; the append's expected version still
        guards it. A concurrent writer makes it reload and decide again, and so
        does one that recorded the same step first: the state returned is then
        the recorded one, never this call's own copy of the step.
        """
        known = history
        for _ in range(_CONFLICT_RETRIES):
            history = (
                known if known is not None else await self._store.read_stream(order_id)
            )
            known = None
            state = replay(envelope.event for envelope in history)
            if state is None:
                raise OrderNotFoundError(order_id)
            events = decide(state)
            if not events:
                return state, []
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
            except WrongExpectedVersionError:
                continue
            if appended.replayed:
                # Another writer recorded this very step first, perhaps with other
                # content (another signed transaction): reload and act on that.
                continue
            # Outcomes are counted here, where they are recorded, not by replaying.
            observe_recorded(history, events, datetime.now(UTC))
            annotate(recorded=[event.type for event in events])
            for event in events:
                state = evolve(state, event)
            return state, events
        raise WrongExpectedVersionError(order_id, -1, -1)
