"""The event store contract, against the in-memory store."""

import pytest

from shared.eventstore.memory import InMemoryEventStore
from tests.contracts.event_store import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()
