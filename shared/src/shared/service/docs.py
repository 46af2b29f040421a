"""Swagger UI for every service, served from the package itself.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN, which renders blank
where there is no internet. Services create their app with ``docs_url=None,
redoc_url=None`` and call ``mount_docs``: the page and its assets come from here.
"""

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"
SWAGGER_URL = "/swagger-ui"


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and its assets at ``/swagger-ui``."""
    app.mount(SWAGGER_URL, StaticFiles(directory=SWAGGER_DIR), name="swagger-ui")
    openapi_url = app.openapi_url
    if openapi_url is None:
        return  # no schema, nothing for Swagger UI to show
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        # The online validator badge would make the browser call swagger.io.
        parameters: dict[str, Any] = {"validatorUrl": None}
        parameters.update(app.swagger_ui_parameters or {})
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_URL}/favicon-32x32.png",
            oauth2_redirect_url=(
                root + oauth2_redirect_url if oauth2_redirect_url else None
            ),
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=parameters,
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()
