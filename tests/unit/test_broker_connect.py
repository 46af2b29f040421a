"""A broker that takes the connection but never answers is an error in seconds."""

import asyncio
import gc

import pytest

from shared.service.runtime import make_broker
from shared.settings import Settings


# aio-pika leaves the failed connection's close unawaited when it is collected.
@pytest.mark.filterwarnings("ignore:coroutine 'RobustConnection.close'")
async def test_a_broker_that_never_answers_fails_the_connect_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A blackholed AMQP_URL would otherwise stall a service's start for good."""
    monkeypatch.setattr("shared.service.runtime.BROKER_CONNECT_TIMEOUT_S", 0.5)
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # the handshake never starts

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = Settings(
        _env_file=None, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/"
    )
    connecting = asyncio.ensure_future(make_broker(settings, prefetch=1).connect())
    try:
        done, _ = await asyncio.wait({connecting}, timeout=5)
    finally:
        connecting.cancel()
        server.close()

    assert connecting in done, "still connecting after 5 s"
    assert isinstance(connecting.exception(), TimeoutError)
    del connecting, done
    gc.collect()  # here, not in whichever test runs next
