"""Base class for every message: frozen, strict, camelCase on the wire."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Message(BaseModel):
    """A frozen value whose JSON form uses camelCase names.

    Events, quotes and API bodies all share this shape, so one JSON dialect is spoken
    on HTTP, on the WebSocket, on RabbitMQ and in the event store.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        ser_json_inf_nan="strings",
    )
