"""The browser side of the gateway: the dashboard and its assets.

Everything a browser loads is served from the package's own ``static`` directory,
never from a CDN: many deployments of this product have no internet access.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The dashboard is a handful of small files that change with each release; making
# the browser revalidate them (cheap: StaticFiles answers 304 on a matching ETag)
# keeps a stale app.js from talking to a newer API.
_REVALIDATE = {"Cache-Control": "no-cache"}


def mount_web(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and its assets at ``/static``.

    Swagger UI at ``/docs`` comes with every service's app (``service_app``).
    """
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_REVALIDATE)
