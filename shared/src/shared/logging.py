"""Logging: one JSON object per line on stdout (or readable lines on a terminal).

Modules log through the standard library (``logging.getLogger(__name__)``) and pass
context in ``extra`` (``order_id``, ``kind``, ...); structlog renders it. Context that
holds for a whole unit of work is bound once with ``structlog.contextvars``
(``bound_contextvars(order_id=..., correlation_id=...)``): the delivery of a message
(``shared.messaging.delivery``) and each gateway request about an order do so, and
every line logged inside carries those keys. ``extra`` wins over bound context.

A JSON line looks like::

    {"event": "handled", "consumer": "router", "event_type": "OrderAccepted",
     "outcome": "ack", "duration_ms": 41.2, "order_id": "…", "correlation_id": "…",
     "event_id": "…", "level": "info", "timestamp": "…", "service": "router"}
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

from shared.settings import Settings


def configure_logging(settings: Settings, *, service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter(settings, service=service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("aio_pika", "aiormq", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def formatter(settings: Settings, *, service: str) -> logging.Formatter:
    """How every line is rendered: stdlib records plus bound context, as JSON."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_service(service),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def _add_service(service: str) -> structlog.types.Processor:
    def add(
        _logger: object, _name: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


_annotations: ContextVar[dict[str, Any] | None] = ContextVar(
    "oe_log_annotations", default=None
)


def annotate(**fields: object) -> None:
    """Add fields to the canonical line of the unit of work being handled.

    Inside ``collecting_annotations`` (each delivery's ``settle``) the fields end up
    on its one ``handled`` line; lists accumulate. Elsewhere this does nothing.
    """
    collected = _annotations.get()
    if collected is None:
        return
    for key, value in fields.items():
        previous = collected.get(key)
        if isinstance(previous, list) and isinstance(value, list):
            previous.extend(value)
        else:
            collected[key] = value


@contextmanager
def collecting_annotations() -> Iterator[dict[str, Any]]:
    collected: dict[str, Any] = {}
    token = _annotations.set(collected)
    try:
        yield collected
    finally:
        _annotations.reset(token)
