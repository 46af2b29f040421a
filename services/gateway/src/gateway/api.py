"""The HTTP API: thin translation between requests and the gateway's use cases."""

import asyncio
import dataclasses
import logging
import math
from decimal import Decimal
from typing import Annotated, Any, Final, cast
from uuid import UUID, uuid4

import psycopg
import psycopg_pool
import structlog
from fastapi import (
    APIRouter,
    Body,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from gateway import examples
from gateway.admission import Admission
from gateway.exact_numbers import ExactNumbersRoute
from gateway.examples import json_example
from gateway.handlers import (
    IdempotencyConflictError,
    Placed,
    RecordedUnreadableError,
    accepted_order,
    fold,
    order_id_for,
    place_order,
)
from gateway.paging import cursor_after, place_of
from gateway.readmodel import OrdersView
from gateway.schemas import (
    CLIENT_ORDER_ID_PATTERN,
    AttemptFailure,
    OrderCreate,
    OrderLinks,
    OrderList,
    OrderPublic,
    OrderReceipt,
    OrderSummary,
    Problem,
    ValidationProblem,
)
from shared.domain.envelope import EventEnvelope
from shared.domain.events import (
    OrderAccepted,
    OrderStatus,
)
from shared.domain.model import fixed_point
from shared.domain.order import OrderState
from shared.domain.pairs import SUPPORTED_PAIRS
from shared.domain.views import status_frame
from shared.eventstore.follower import Follower
from shared.eventstore.port import EventStore
from shared.metrics import ORDERS_ACCEPTED, ORDERS_REFUSED
from shared.settings import Settings

logger = logging.getLogger(__name__)

Responses = dict[int | str, dict[str, Any]]

NOT_FOUND: Responses = {
    404: {
        "model": Problem,
        **json_example("No order with this id", examples.NOT_FOUND),
    },
    422: {
        "model": ValidationProblem,
        **json_example(
            "The order id is not a UUID",
            {
                "detail": [
                    {
                        "type": "uuid_parsing",
                        "loc": ["path", "order_id"],
                        "msg": "Input should be a valid UUID, invalid length:"
                        " expected length 32 for simple format, found 7",
                        "input": "not-one",
                        "ctx": {
                            "error": "invalid length: expected length 32 for"
                            " simple format, found 7"
                        },
                    }
                ]
            },
        ),
    },
}

STORE_UNAVAILABLE: Responses = {
    503: {
        "model": Problem,
        "headers": {
            "Retry-After": {
                "description": "1: the store is briefly unreachable",
                "schema": {"type": "string", "enum": ["1"]},
            }
        },
        **json_example(
            "The event store is briefly unreachable (a restart, a failover)",
            examples.STORE_UNAVAILABLE,
        ),
    }
}

EXECUTE_RESPONSES: Responses = {
    202: json_example(
        "Recorded: follow it over the WebSocket at `links.ws`",
        examples.RECEIPT_ACCEPTED,
    ),
    200: {
        "model": OrderReceipt,
        "headers": {
            "Idempotent-Replayed": {
                "description": "`true`: this is the order first placed with the key",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
        **json_example(
            "Same idempotency key and parameters: the same order, as it is now",
            examples.RECEIPT_REPLAYED,
        ),
    },
    409: {
        "model": Problem,
        **json_example(
            "The idempotency key was used for a different order", examples.CONFLICT
        ),
    },
    413: {
        "model": Problem,
        **json_example("Request body over 16 KiB", examples.TOO_LARGE),
    },
    415: {
        "model": Problem,
        "headers": {
            "Accept": {
                "description": "The media type the body must have",
                "schema": {"type": "string", "enum": ["application/json"]},
            }
        },
        **json_example(
            "The body is not JSON by its Content-Type (a form, or no header)",
            examples.NOT_JSON,
        ),
    },
    422: {
        "model": ValidationProblem,
        **json_example(
            "Invalid field; `loc` names it. Nothing is recorded", examples.INVALID
        ),
    },
    503: {
        "model": Problem,
        "headers": {
            "Retry-After": {
                "description": "Whole seconds to wait before retrying: 1 while the"
                " store is unreachable; at capacity, the gateway's estimate of the"
                " wait for room (waiting clients over the rate orders are admitted),"
                " rounded up, 1-30",
                "schema": {"type": "string", "pattern": "^[1-9][0-9]?$"},
            },
            "Retry-After-Ms": {
                "description": "At capacity only: the same estimate in"
                " milliseconds, 250-30000. A client that reads it waits less than"
                " a whole second when room is that close",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
        },
        "description": "The engine is at its in-flight limit (the request waited"
        " up to `ADMISSION_QUEUE_MS` for room first), or the event store is briefly"
        " unreachable: retry after `Retry-After-Ms` milliseconds where sent, else"
        " `Retry-After` seconds (with the same `clientOrderId`, it is safe)."
        " Nothing is recorded, except when the store failed while the order was"
        " being written and stayed unreachable while the gateway tried again"
        " (about 6 s): then `detail` names the order id, which may be recorded"
        " (`GET /api/orders/{orderId}` tells)",
        "content": {
            "application/json": {
                "examples": {
                    "at capacity": {"value": examples.AT_CAPACITY},
                    "store unavailable": {"value": examples.STORE_UNAVAILABLE},
                }
            }
        },
    },
}


async def _record_admitted(
    store: EventStore,
    admission: Admission,
    accepted: OrderAccepted,
    *,
    correlation_id: UUID,
) -> Placed:
    """Record the order if the engine has room for it, or return it if repeated.

    The room is held from the check until the append has answered, so concurrent
    requests cannot all take the same free slot; at capacity the request waits a
    moment for room, in turn. Raises 503 (still at capacity) or 409 (an
    idempotency key reused for another order).
    """
    held = await admission.acquire()
    if not held and not (
        accepted.client_order_id and await store.read_stream(accepted.order_id)
    ):
        # A repeated clientOrderId still gets its order back, full or not.
        ORDERS_REFUSED.inc()
        retry_after = admission.retry_after()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"engine at capacity: {admission.in_flight} orders in flight,"
            f" limit {admission.limit}; retry in {retry_after:g} s (with the same"
            " clientOrderId, it is safe)",
            headers={
                # HTTP's header counts whole seconds; the wait is often less
                "Retry-After": str(max(1, math.ceil(retry_after))),
                "Retry-After-Ms": str(round(retry_after * 1000)),
            },
        )
    recorded_at: int | None = None
    submission_id = uuid4()
    try:
        try:
            # Not timed here: the store bounds the wait for each statement's
            # answer (a store that stops answering without closing the
            # connection fails it as a dropped connection), and the pool its
            # wait for a connection, which sends nothing.
            placed = await place_order(
                store,
                accepted,
                correlation_id=correlation_id,
                submission_id=submission_id,
            )
        except psycopg.OperationalError as error:
            if error.sqlstate or isinstance(error, psycopg_pool.PoolTimeout):
                # The server answered (the statement failed and rolled back), or
                # there was no connection to send it on.
                raise _not_recorded(accepted.order_id) from None
            placed = await _placed_after_drop(
                store,
                accepted,
                correlation_id=correlation_id,
                submission_id=submission_id,
            )
        if not placed.replayed:
            recorded_at = placed.position
    except IdempotencyConflictError as error:
        logger.warning(
            "idempotency key reused for another order",
            extra={"kind": "idempotency_conflict"},
        )
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except RecordedUnreadableError as error:
        raise _recorded_unreadable(error) from None
    finally:
        if held:
            admission.release(recorded_at)
    return placed


DROPPED_APPEND_RETRY_S: Final = 6.0
"""How long an append that lost its connection is tried again: a PostgreSQL
restart's worth, well inside any HTTP client's patience."""
_FIRST_PAUSE_S: Final = 0.1
_LONGEST_PAUSE_S: Final = 1.0


async def _placed_after_drop(
    store: EventStore,
    accepted: OrderAccepted,
    *,
    correlation_id: UUID,
    submission_id: UUID,
) -> Placed:
    """The order, appended again after its append lost its connection.

    The server may have committed that append, may still commit it, or never
    will: no read can tell which in time. But the append is idempotent (the
    same event ids), so it is sent again until the store answers, and the answer
    is the outcome: the first attempt's events found, or recorded now, exactly
    once either way. Events this request caused are its own first attempt, not a
    replay. Each try is bounded by what is left of
    ``DROPPED_APPEND_RETRY_S``; a store unreachable for all of it leaves the
    outcome unknown, and the 503 says so and names the order.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DROPPED_APPEND_RETRY_S
    backoff = wait_exponential(multiplier=_FIRST_PAUSE_S, max=_LONGEST_PAUSE_S)
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(
                (psycopg.OperationalError, TimeoutError, RecordedUnreadableError)
            ),
            # Never past the deadline: the last try starts there at the latest.
            wait=lambda state: min(backoff(state), max(0.0, deadline - loop.time())),
            stop=stop_after_delay(DROPPED_APPEND_RETRY_S),
            reraise=True,
        ):
            with attempt:
                async with asyncio.timeout_at(deadline):
                    placed = await place_order(
                        store,
                        accepted,
                        correlation_id=correlation_id,
                        submission_id=submission_id,
                    )
    except (psycopg.OperationalError, TimeoutError):
        raise _outcome_unknown(accepted.order_id) from None
    except RecordedUnreadableError as error:
        raise _recorded_unreadable(error) from None
    if placed.replayed and placed.recorded_by == submission_id:
        placed = dataclasses.replace(placed, replayed=False)
    return placed


def _outcome_unknown(order_id: UUID) -> HTTPException:
    logger.warning("append outcome unknown", extra={"kind": "append_outcome_unknown"})
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"the event store failed while order {order_id} was being recorded, and it"
        f" may or may not be recorded: GET /api/orders/{order_id} shows it if it"
        " is. Submitting again with the same clientOrderId is safe; without one it"
        " is a new order",
        headers={"Retry-After": "1"},
    )


def _recorded_unreadable(error: RecordedUnreadableError) -> HTTPException:
    order_id = error.order_id
    logger.warning(
        "replay unreadable",
        exc_info=error.__cause__,
        extra={"kind": "replay_unreadable"},
    )
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"order {order_id} is recorded, but the event store failed while reading it"
        f" back: GET /api/orders/{order_id} shows it. Submitting again with the same"
        " clientOrderId is safe; without one it is a second order",
        headers={"Retry-After": "1"},
    )


def _only_known_parameters(request: Request) -> None:
    """A misspelt or unsupported parameter is refused, not silently ignored: a
    client paging with ``?offset=`` would otherwise get the first page again.

    Known are the query parameters the route declares, by their public names.
    """
    route = cast("APIRoute", request.scope["route"])
    known = {param.alias for param in route.dependant.query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown parameter; this endpoint takes"
                    f" {', '.join(sorted(known))}",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


def _not_recorded(order_id: UUID) -> HTTPException:
    logger.warning("append failed", extra={"kind": "append_failed"})
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"the event store failed while order {order_id} was being recorded, and it"
        " is not recorded: submitting it again is safe",
        headers={"Retry-After": "1"},
    )


def orders_api(  # noqa: C901 - one nested function per route
    *,
    settings: Settings,
    store: EventStore,
    view: OrdersView,
    projector: Follower,
    admission: Admission,
) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["orders"], route_class=ExactNumbersRoute)

    def links(order_id: UUID) -> OrderLinks:
        return OrderLinks(
            self_=f"/api/orders/{order_id}",
            events=f"/api/orders/{order_id}/events",
            ws=f"{settings.notifier_public_url}/ws/orders/{order_id}",
        )

    @api.post(
        "/orders/execute",
        status_code=status.HTTP_202_ACCEPTED,
        response_model_by_alias=True,
        summary="Submit a market order",
        responses=EXECUTE_RESPONSES,
    )
    async def execute(
        order: Annotated[
            OrderCreate, Body(openapi_examples=examples.EXECUTE_BODY_EXAMPLES)
        ],
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=64,
                pattern=CLIENT_ORDER_ID_PATTERN,
            ),
        ] = None,
        request_id: Annotated[str | None, Header(alias="X-Request-ID")] = None,
    ) -> OrderReceipt:
        if (
            order.client_order_id
            and idempotency_key
            and order.client_order_id != idempotency_key
        ):
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("header", "Idempotency-Key"),
                        "msg": "Idempotency-Key differs from clientOrderId;"
                        " send one of them, or the same value",
                        "input": idempotency_key,
                    }
                ]
            )
        client_order_id = order.client_order_id or idempotency_key
        order_id = order_id_for(client_order_id)
        correlation_id = _uuid_or_new(request_id)
        accepted = accepted_order(
            order_id=order_id,
            token_pair=order.token_pair,
            side=order.side,
            amount=order.amount,
            slippage_bps=order.slippage_bps,
            client_order_id=client_order_id,
        )
        with structlog.contextvars.bound_contextvars(
            order_id=str(order_id), correlation_id=str(correlation_id)
        ):
            placed = await _record_admitted(
                store, admission, accepted, correlation_id=correlation_id
            )
            structlog.contextvars.bind_contextvars(
                correlation_id=str(placed.correlation_id)
            )
            if placed.replayed:
                response.status_code = status.HTTP_200_OK
                response.headers["Idempotent-Replayed"] = "true"
            else:
                ORDERS_ACCEPTED.inc()
            logger.info(
                "order replayed" if placed.replayed else "order accepted",
                extra={
                    "kind": "OrderAccepted",
                    "status": placed.status.value,
                    "token_pair": order.token_pair,
                    "side": order.side.value,
                    "amount": fixed_point(order.amount),
                    "client_order_id": client_order_id,
                    **(
                        {"request_correlation_id": str(correlation_id)}
                        if placed.correlation_id != correlation_id
                        else {}
                    ),
                },
            )
        return OrderReceipt(
            order_id=placed.order_id, status=placed.status, links=links(order_id)
        )

    @api.api_route(
        "/orders/execute",
        methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def execute_other_methods(request: Request) -> JSONResponse:
        # Without it, a GET would be read as /orders/{order_id} and refused for
        # "execute" not being a UUID.
        return JSONResponse(
            status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
            content={"detail": f"{request.method} not allowed: submit with POST"},
            headers={"Allow": "POST"},
        )

    @api.get(
        "/orders/{order_id}",
        responses={
            200: json_example("The order as its events say", examples.ORDER),
            **NOT_FOUND,
            **STORE_UNAVAILABLE,
        },
        response_model_by_alias=True,
        summary="An order, folded from its events",
    )
    async def get_order(order_id: UUID) -> OrderPublic:
        with structlog.contextvars.bound_contextvars(order_id=str(order_id)):
            history = await store.read_stream(order_id)
            state = fold(history)
            if state is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"order {order_id} not found"
                )
            with structlog.contextvars.bound_contextvars(
                correlation_id=str(history[0].correlation_id)
            ):
                return order_public(history, state)

    @api.get(
        "/orders/{order_id}/events",
        responses={
            200: json_example(
                "Every event, oldest first (shortened here)", examples.EVENTS
            ),
            **NOT_FOUND,
            **STORE_UNAVAILABLE,
        },
        summary="Every event of an order, as the WebSocket frames them",
    )
    async def get_order_events(order_id: UUID) -> dict[str, list[dict[str, object]]]:
        with structlog.contextvars.bound_contextvars(order_id=str(order_id)):
            history = await store.read_stream(order_id)
            if not history:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"order {order_id} not found"
                )
            with structlog.contextvars.bound_contextvars(
                correlation_id=str(history[0].correlation_id)
            ):
                return {"events": [status_frame(e) for e in history]}

    @api.get(
        "/orders",
        responses={
            200: json_example(
                "Newest first; `asOfPosition` is the read model's checkpoint;"
                " `nextCursor`, as `before`, is the next page",
                examples.ORDER_LIST,
            ),
            422: {
                "model": ValidationProblem,
                **json_example(
                    "Unknown status, limit out of 1..1000, a `before` this API"
                    " did not return, or an unknown parameter",
                    {
                        "detail": [
                            {
                                "type": "less_than_equal",
                                "loc": ["query", "limit"],
                                "msg": "Input should be less than or equal to 1000",
                                "input": "5000",
                                "ctx": {"le": 1000},
                            }
                        ]
                    },
                ),
            },
            **STORE_UNAVAILABLE,
        },
        response_model_by_alias=True,
        summary="Recent orders, newest first (read model)",
    )
    async def list_orders(
        request: Request,
        status_filter: Annotated[OrderStatus | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        before: Annotated[
            str | None,
            Query(
                max_length=200,
                description="A previous page's `nextCursor`: the orders after it",
            ),
        ] = None,
    ) -> OrderList:
        _only_known_parameters(request)
        place = None
        if before is not None:
            try:
                place = place_of(before)
            except ValueError as error:
                raise RequestValidationError(
                    [
                        {
                            "type": "value_error",
                            "loc": ("query", "before"),
                            "msg": str(error),
                            "input": before,
                        }
                    ]
                ) from None
        as_of_position = await projector.position()
        # One more than asked: a next page exists only if that row does.
        rows = await view.recent(
            status=status_filter.value if status_filter else None,
            limit=limit + 1,
            before=place,
        )
        more, rows = len(rows) > limit, rows[:limit]
        last = rows[-1] if more else None
        return OrderList(
            orders=tuple(
                OrderSummary(
                    order_id=r["order_id"],
                    status=r["status"],
                    token_pair=r["token_pair"],
                    side=r["side"],
                    amount=Decimal(r["amount"]),
                    venue=r["venue"],
                    final_price=r["final_price"],
                    tx_hash=r["tx_hash"],
                    attempts=r["attempts"],
                    failure_reason=r["failure_reason"],
                    version=r["version"],
                    created_at=r["created_at"],
                    updated_at=r["updated_at"],
                )
                for r in rows
            ),
            as_of_position=as_of_position,
            next_cursor=(
                cursor_after((last["created_at"], last["order_id"]))
                if last is not None
                else None
            ),
        )

    @api.get(
        "/pairs",
        tags=["reference"],
        summary="The pairs the engine trades",
        responses={200: json_example("Supported pairs", examples.PAIRS)},
    )
    async def pairs() -> dict[str, list[str]]:
        return {"pairs": list(SUPPORTED_PAIRS)}

    @api.get(
        "/config",
        tags=["reference"],
        summary="Where the browser finds the notifier",
        responses={200: json_example("The notifier's public URL", examples.CONFIG)},
    )
    async def config() -> dict[str, str]:
        return {"notifierUrl": settings.notifier_public_url}

    return api


def order_public(history: list[EventEnvelope], state: OrderState) -> OrderPublic:
    spec = state.spec
    confirmation = state.confirmation
    signature = (
        confirmation.tx_hash
        if confirmation
        else state.transaction.signature
        if state.transaction
        else state.failure.signature
        if state.failure
        else None
    )
    return OrderPublic(
        order_id=state.order_id,
        status=state.status,
        order_type=spec.order_type.value,
        token_pair=spec.token_pair,
        side=spec.side,
        amount=spec.amount,
        slippage_bps=spec.slippage_bps,
        client_order_id=spec.client_order_id,
        attempt=state.attempt,
        quotes=state.quotes,
        route_plan=state.plan,
        tx_hash=signature,
        final_price=confirmation.final_price if confirmation else None,
        amount_in=confirmation.amount_in if confirmation else None,
        amount_out=confirmation.amount_out if confirmation else None,
        quoted_amount_out=confirmation.quoted_amount_out if confirmation else None,
        failures=tuple(
            AttemptFailure(attempt=r.failed_attempt, failure=r.failure, reason=r.reason)
            for r in state.failed_attempts
        )
        + (
            (
                AttemptFailure(
                    attempt=state.failure.failed_attempt,
                    failure=state.failure.failure,
                    reason=state.failure.reason,
                ),
            )
            if state.failure
            else ()
        ),
        failure_reason=state.failure.reason if state.failure else None,
        version=state.version,
        created_at=history[0].recorded_at,
        updated_at=history[-1].recorded_at,
    )


def _uuid_or_new(value: str | None) -> UUID:
    try:
        return UUID(value) if value else uuid4()
    except ValueError:
        return uuid4()
