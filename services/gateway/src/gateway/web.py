"""The browser side of the gateway: the dashboard, its assets and Swagger UI.

Everything a browser loads is served from the package's own ``static`` directory,
never from a CDN: many deployments of this product have no internet access.
"""

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
SWAGGER_DIR = "/static/vendor/swagger-ui"

# The dashboard is a handful of small files that change with each release; making
# the browser revalidate them (cheap: StaticFiles answers 304 on a matching ETag)
# keeps a stale app.js from talking to a newer API.
_REVALIDATE = {"Cache-Control": "no-cache"}


def mount_web(app: FastAPI) -> None:
    """Serve the dashboard at ``/``, assets at ``/static``, Swagger UI at ``/docs``.

    Create the app with ``docs_url=None, redoc_url=None`` so FastAPI's CDN-backed
    pages do not claim those paths first.
    """
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_REVALIDATE)

    openapi_url = app.openapi_url
    if openapi_url is None:
        return  # no schema, nothing for Swagger UI to show
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        # The online validator badge would make the browser call swagger.io.
        parameters: dict[str, Any] = {"validatorUrl": None}
        parameters.update(app.swagger_ui_parameters or {})
        return get_swagger_ui_html(
            openapi_url=root_path + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root_path}{SWAGGER_DIR}/swagger-ui-bundle.js",
            swagger_css_url=f"{root_path}{SWAGGER_DIR}/swagger-ui.css",
            swagger_favicon_url=f"{root_path}{SWAGGER_DIR}/favicon-32x32.png",
            oauth2_redirect_url=(
                root_path + oauth2_redirect_url if oauth2_redirect_url else None
            ),
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=parameters,
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()
