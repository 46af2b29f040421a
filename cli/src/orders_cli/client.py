"""HTTP and WebSocket access to a running system, as any other client would have.

Nothing here imports the services: the CLI speaks the public API only (README, API).
"""

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

Frame = dict[str, Any]

TERMINAL = frozenset({"confirmed", "failed"})
# Reconnects in a row before giving up (about 16 s of back-off: a notifier
# restart's worth); any close other than a refusal (e.g. 1013, a subscriber that
# fell behind) resumes with ?after=.
RECONNECTS = 6
_FIRST_PAUSE_S = 0.2
_LONGEST_PAUSE_S = 5.0
GENERATED_KEY_PREFIX = "cli-"
"""The clientOrderId the CLI gives an order the user gave none: ``cli-<uuid>``."""
SUBMIT_TIMEOUT_S = 45.0
"""How long a submit waits for its answer: past the gateway's own bound on a store
that went silent (it answers within about 20 s), so the answer is the gateway's,
not a guess."""
# The notifier's close codes for a refused order id, as the HTTP status they mean.
REFUSED = {4400: 400, 4404: 404}


class ApiError(Exception):
    """The system refused a request or could not be reached.

    ``status`` is the HTTP status (``None`` when nothing answered); ``detail`` is
    the API's ``detail`` (a message, or FastAPI's list of field errors);
    ``retry_after`` is the seconds a 503 asked to wait before trying again;
    ``unanswered`` says the request was sent but no answer came, so what it did
    is not known (an order may have been recorded).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: object = None,
        retry_after: float | None = None,
        unanswered: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        self.unanswered = unanswered

    def as_json(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, "detail": self.detail}


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a 503 asks for, in seconds: ``Retry-After-Ms`` where the gateway
    sends it (at capacity, to the millisecond), else ``Retry-After`` (whole
    seconds; the API sends delta-seconds, never a date). ``headers`` are looked up
    case-insensitively, as httpx's and aiohttp's are."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            continue
    return None


def _error_message(status: int, detail: object) -> str:
    if isinstance(detail, list):
        return "; ".join(field_error(item) for item in detail)
    if detail:
        return str(detail)
    return f"HTTP {status}"


def field_error(item: object) -> str:
    """``amount: Input should be greater than 0`` from one FastAPI error entry."""
    if not isinstance(item, Mapping):
        return str(item)
    loc = [
        str(part)
        for part in item.get("loc", ())
        if part not in {"body", "query", "path"}
    ]
    where = ".".join(loc) or "request"
    return f"{where}: {item.get('msg', 'invalid')}"


class OrdersClient:
    """One HTTP connection pool and a resolved notifier URL for one command run."""

    def __init__(
        self, api_url: str, ws_url: str | None = None, *, timeout: float = 10
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._ws_url = ws_url.rstrip("/") if ws_url else None
        self._http = httpx.AsyncClient(base_url=self.api_url, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str | int] | None = None,
        answer_within: float | None = None,
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method,
                path,
                json=body,
                params=params,
                timeout=(
                    httpx.USE_CLIENT_DEFAULT if answer_within is None else answer_within
                ),
            )
        except httpx.HTTPError as error:
            problem = (
                "no answer from"
                if isinstance(error, httpx.ReadTimeout)
                else "cannot reach"
            )
            raise ApiError(
                f"{problem} the API at {self.api_url}: {error!r}",
                # Anything after the request was sent leaves its outcome open.
                unanswered=not isinstance(
                    error, (httpx.ConnectError, httpx.ConnectTimeout)
                ),
            ) from None
        if response.status_code >= 400:  # noqa: PLR2004 - HTTP error range
            try:
                detail = response.json().get("detail")
            except (ValueError, AttributeError):
                detail = response.text
            raise ApiError(
                _error_message(response.status_code, detail),
                status=response.status_code,
                detail=detail,
                retry_after=retry_after_seconds(response.headers),
            )
        answer: dict[str, Any] = response.json()
        return answer

    async def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/orders/execute → the receipt ``{orderId, status, links}``."""
        return await self._request(
            "POST", "/api/orders/execute", body=body, answer_within=SUBMIT_TIMEOUT_S
        )

    async def order(self, order_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/orders/{quote(order_id, safe='')}")

    async def events(self, order_id: str) -> list[Frame]:
        answer = await self._request(
            "GET", f"/api/orders/{quote(order_id, safe='')}/events"
        )
        return list(answer["events"])

    async def orders(
        self, *, status: str | None, limit: int, before: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if status:
            params["status"] = status
        if before:
            params["before"] = before
        return await self._request("GET", "/api/orders", params=params)

    async def ws_url(self) -> str:
        """The notifier's base URL: as given, else what ``/api/config`` says."""
        if self._ws_url is None:
            config = await self._request("GET", "/api/config")
            self._ws_url = str(config["notifierUrl"]).rstrip("/")
        return self._ws_url

    async def _connect(self, url: str) -> ClientConnection:
        try:
            return await websockets.connect(url, open_timeout=10)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
            raise ApiError(f"cannot reach the notifier at {url}: {error!r}") from None

    async def follow(self, order_id: str, *, after: int = 0) -> AsyncIterator[Frame]:
        """Every frame of one order after version ``after``, live, until terminal.

        A dropped connection resumes with ``?after=<last version>``, so no frame is
        missed or repeated.
        """
        base = await self.ws_url()
        last = after
        drops = 0
        while True:
            url = f"{base}/ws/orders/{quote(order_id, safe='')}?after={last}"
            try:
                ws = await self._connect(url)
            except ApiError as error:
                drops = await _dropped(drops, f"following {order_id}", error)
                continue
            refused: str | None = None
            try:
                async for message in ws:
                    frame = _frame(message)
                    if "error" in frame:
                        refused = str(frame["error"])
                        continue
                    last = max(last, int(frame["version"]))
                    drops = 0
                    yield frame
                    if frame["status"] in TERMINAL:
                        return
            except ConnectionClosed:
                pass
            finally:
                await ws.close()
            if (refusal := _refusal(ws, refused, f"order {order_id}")) is not None:
                raise refusal
            drops = await _dropped(drops, f"following {order_id}")

    async def firehose(self, *, after: int | None = None) -> AsyncIterator[Frame]:
        """Every order's frames, live, forever; resumes by global position.

        Live only (no ``after``), a connection dropped before its first frame
        resumes from the position the order list had reached before it connected:
        a frame from just before may show, none after is missed.
        """
        base = await self.ws_url()
        last = after if after is not None else await self._listed_through()
        query = "" if after is None else f"?after={after}"
        drops = 0
        while True:
            try:
                ws = await self._connect(f"{base}/ws/orders{query}")
            except ApiError as error:
                drops = await _dropped(drops, "on the firehose", error)
                if last is not None:  # what came meanwhile is not to be missed
                    query = f"?after={last}"
                continue
            refused: str | None = None
            try:
                async for message in ws:
                    frame = _frame(message)
                    if "error" in frame:
                        refused = str(frame["error"])
                        continue
                    last = int(frame["position"])
                    drops = 0
                    yield frame
            except ConnectionClosed:
                pass
            finally:
                await ws.close()
            if (refusal := _refusal(ws, refused, "firehose")) is not None:
                raise refusal
            if last is not None:
                query = f"?after={last}"
            drops = await _dropped(drops, "on the firehose")

    async def _listed_through(self) -> int | None:
        """The log position the order list reflects; None if the API cannot say."""
        try:
            listed = await self.orders(status=None, limit=1)
        except ApiError:
            return None
        return int(listed["asOfPosition"])


async def _dropped(drops: int, doing: str, error: ApiError | None = None) -> int:
    """Count one more lost connection in a row and wait before the next try;
    raise once there have been too many."""
    drops += 1
    if drops > RECONNECTS:
        cause = f": {error.message}" if error is not None else ""
        raise ApiError(f"lost the notifier {RECONNECTS} times in a row {doing}{cause}")
    await asyncio.sleep(pause_after(drops))
    return drops


def pause_after(failures: int) -> float:
    """Seconds to wait before trying again after ``failures`` in a row."""
    return min(_FIRST_PAUSE_S * 2.0**failures, _LONGEST_PAUSE_S)


def _refusal(
    ws: ClientConnection, refused: str | None, subject: str
) -> ApiError | None:
    """The notifier's refusal of a stream (an error frame, or a 44xx close)."""
    if refused is None and ws.close_code not in REFUSED:
        return None
    reason = refused or ws.close_reason or "refused"
    return ApiError(
        f"{subject}: {reason}", status=REFUSED.get(ws.close_code or 0), detail=reason
    )


def _frame(message: str | bytes) -> Frame:
    frame: Frame = json.loads(message)
    return frame
