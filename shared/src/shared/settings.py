"""The one settings model, read from the environment (and a .env file)."""

import os
import sys
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _log_level(value: object) -> object:
    """Any case, and ``WARN`` as the logging module takes it."""
    if not isinstance(value, str):
        return value
    level = value.upper()
    return "WARNING" if level == "WARN" else level


Port = Annotated[int, Field(ge=1, le=65_535)]
Rate = Annotated[float, Field(ge=0, le=1)]  # a share of events, 0 to 1


class Settings(BaseSettings):
    """Every setting of every service. Each service reads the fields it needs.

    Infrastructure URLs are unprefixed (``DATABASE_URL``, ``AMQP_URL``); everything
    else is named for what it tunes.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    broker_namespace: str = Field(
        default="oe", description="Prefix of every exchange and queue name"
    )
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(_log_level),
    ] = "INFO"
    log_format: Literal["json", "console"] = "json"

    # HTTP and WebSocket
    http_host: str = "0.0.0.0"  # noqa: S104 - services listen on every interface in containers
    gateway_port: Port = 3000
    notifier_port: Port = 3001
    # The WebSocket address as a browser sees it; unset, the notifier's port on
    # localhost, so moving NOTIFIER_PORT moves the links with it.
    notifier_public_url: str = ""
    # Replicas of a service on one host share its port: the kernel spreads new
    # connections over them (SO_REUSEPORT). Off by default, so a second system
    # started on a taken port by mistake fails instead of sharing it.
    http_reuse_port: bool = False
    router_http_port: Port = 3002  # health and metrics of the router
    executor_http_port: Port = 3003  # health and metrics of the executor
    max_body_bytes: int = Field(default=16_384, ge=1_024)
    max_orders_in_flight: int = Field(
        default=500,
        ge=0,
        description="New orders are refused (503, Retry-After) while this many are"
        " neither confirmed nor failed; 0 admits every order",
    )
    admission_queue_ms: int = Field(
        default=1000,
        ge=0,
        description="At the limit, a new order waits up to this long for room,"
        " first come first served, before it is refused (only as many wait as"
        " room is expected for in that time); 0 refuses at once",
    )
    admission_target_wait_ms: int = Field(
        default=500,
        ge=0,
        description="Below MAX_ORDERS_IN_FLIGHT, admit fewer orders while one has"
        " waited longer than this for a router or an executor; 0 keeps the limit"
        " fixed",
    )
    stalled_after_ms: int = Field(
        default=120_000,
        ge=1,
        description="An order neither confirmed nor failed with nothing recorded"
        " for this long is stalled: counted in oe_orders_stalled and named in a"
        " warning. Longer than any healthy wait (a back-off, a transaction's"
        " blockhash validity)",
    )
    ws_subscriber_buffer: int = Field(
        default=1024,
        # Below an order's worth of events, every burst would send subscribers to
        # the store for what their buffer could not take.
        ge=64,
        le=1_000_000,
        description="Events buffered per WebSocket subscriber; past it, the"
        " subscriber is sent the rest from the store, or closed (1013) if it has"
        " stopped reading",
    )
    ws_send_buffer_bytes: int = Field(
        default=0,
        ge=0,
        description="The notifier's kernel send buffer per connection (SO_SNDBUF;"
        " Linux doubles it). 0 leaves it to the kernel, which grows it up to"
        " net.ipv4.tcp_wmem's maximum for a client that does not read, so such a"
        " client is cut off only after that much",
    )
    ws_stalled_client_timeout_s: float = Field(
        default=30,
        ge=0,
        le=86_400,
        description="A notifier connection whose client has read nothing for this"
        " long while frames wait for it (its TCP receive window stays shut), or has"
        " acknowledged nothing for this long, is reset by the kernel"
        " (TCP_USER_TIMEOUT, Linux 5.11 or later), so it holds no socket or buffer"
        " even if the client never closes. 0 leaves it to the kernel, which keeps"
        " such a client for as long as it answers window probes",
    )

    # PostgreSQL connections per process (appends serialize anyway: keep it small)
    db_pool_size: int = Field(default=8, ge=2, le=1_000)

    # Relay (store -> RabbitMQ)
    relay_enabled: bool = True
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_ms: int = Field(default=200, ge=1)
    relay_publish_concurrency: int = Field(default=64, ge=1)
    relay_checkpoint_ms: int = Field(
        default=100,
        ge=0,
        description="The relay records how far it has published at most this often;"
        " after a failover, up to this much is published again (consumers are"
        " idempotent)",
    )

    # Read models (gateway orders view, executor in-flight view)
    projection_linger_ms: int = Field(
        default=50,
        ge=0,
        description="Read models wait this long after a wake-up so that events"
        " close together are applied in one batch (they trail the log by as much)",
    )

    # Consumers
    # At least 1: a prefetch of 0 is no limit at all to RabbitMQ, and one process
    # would take the whole queue.
    router_prefetch: int = Field(default=64, ge=1)
    executor_concurrency: int = Field(default=32, ge=1)
    delivery_limit: int = Field(default=5, ge=1)

    # Retry policy
    max_attempts: int = Field(default=3, ge=1)
    backoff_base_ms: int = Field(default=500, ge=0)
    backoff_max_ms: int = Field(default=8_000, ge=0)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1)

    # Simulated venues
    market_seed: int = 7
    quote_delay_ms: int = Field(default=200, ge=0)
    quote_failure_rate: Rate = 0.01
    quote_timeout_ms: int = Field(
        default=2_000,
        ge=1,
        description="A venue that has not answered a quote within this long is"
        " routed around, as one that refused (its reason says it timed out)",
    )
    venue_spread_min: float = Field(default=0.02, ge=0, lt=1)
    venue_spread_max: float = Field(default=0.05, ge=0, lt=1)
    quote_validity_ms: int = Field(default=2_000, ge=1)
    # Pairs whose venues sit venue_spread_min..max apart (trading.md §5.2 divergent
    # profile); every other pair keeps its venues inside the fee band, as arbitrage
    # does on majors. Add pairs here to see the 2-5 % gap on them too.
    divergent_pairs: tuple[str, ...] = ("BONK-SOL", "MOON-SOL")
    market_reversion_half_life_ms: int = Field(default=5_000, ge=1)  # arbitrage

    # Simulated chain
    slot_ms: int = Field(default=400, ge=1)
    blockhash_valid_slots: int = Field(default=150, ge=1)
    confirm_min_ms: int = Field(default=2_000, ge=0)
    confirm_max_ms: int = Field(default=3_000, ge=0)
    rebroadcast_ms: int = Field(default=2_000, ge=1)
    fault_network_rate: Rate = 0.03
    fault_slippage_rate: Rate = 0.03
    fault_drop_rate: Rate = Field(
        default=0.0,
        description="Share of transactions the network drops on every send",
    )

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Self:
        for low, high in (
            ("confirm_min_ms", "confirm_max_ms"),
            ("venue_spread_min", "venue_spread_max"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"{low.upper()} ({getattr(self, low)}) is above"
                    f" {high.upper()} ({getattr(self, high)})"
                )
        return self

    @model_validator(mode="after")
    def _notifier_public_url_follows_its_port(self) -> Self:
        if not self.notifier_public_url:
            self.notifier_public_url = f"ws://localhost:{self.notifier_port}"
        return self


def load_settings() -> Settings:
    """The settings from the environment; when any is invalid, exit 2 naming
    each variable, its value and what is wrong, rather than with a traceback
    that names Python fields."""
    try:
        return Settings()
    except ValidationError as error:
        lines = ["invalid settings:"]
        for issue in error.errors():
            if issue["loc"]:
                name = str(issue["loc"][0]).upper()
                value = os.environ.get(name, issue["input"])  # as written
                lines.append(f"  {name}={value!s}: {issue['msg']}")
            else:  # a rule across settings: its message names them
                lines.append(f"  {issue['msg'].removeprefix('Value error, ')}")
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2) from None
