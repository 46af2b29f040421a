"""The dashboard and Swagger UI load entirely from the gateway itself."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.web import STATIC_DIR, mount_web
from shared.service.docs import SWAGGER_DIR, mount_docs

ABSOLUTE_URL = re.compile(r"(?:https?:|wss?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)
# The vendored files a page needs at run time; licences travel with them.
# (file on disk, URL that serves it)
VENDORED = [
    *(
        (STATIC_DIR / "vendor" / "uplot" / name, f"/static/vendor/uplot/{name}")
        for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE")
    ),
    *(
        (SWAGGER_DIR / name, f"/swagger-ui/{name}")
        for name in (
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "favicon-32x32.png",
            "LICENSE",
        )
    ),
]


class _AssetRefs(HTMLParser):
    """Collects every URL a page makes the browser load."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.testids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v for k, v in attrs if v is not None}
        if "id" in named:
            self.ids.add(named["id"])
        if "data-testid" in named:
            self.testids.add(named["data-testid"])
        if tag == "script" and "src" in named:
            self.refs.append(named["src"])
        elif tag == "link" and "href" in named:
            self.refs.append(named["href"])
        elif tag in {"img", "source", "iframe"} and "src" in named:
            self.refs.append(named["src"])


def _parse(html: str) -> _AssetRefs:
    parser = _AssetRefs()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI(title="web-assets-test", docs_url=None, redoc_url=None)
    mount_docs(app)  # as service_app does for every service
    mount_web(app)
    return TestClient(app)


def test_root_serves_dashboard(client: TestClient) -> None:
    """GET / answers the dashboard page as HTML."""
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = _parse(response.text)
    assert {"pair", "side-sell", "side-buy", "amount", "submit", "orders-table"} <= (
        page.testids
    )
    assert "/static/app.js" in page.refs


@pytest.mark.parametrize("page", ["/", "/docs"])
def test_every_page_asset_resolves_locally(client: TestClient, page: str) -> None:
    """Each script src and link href of the page is served by the app itself."""
    response = client.get(page)
    assert response.status_code == 200
    refs = _parse(response.text).refs
    assert refs, f"{page} references no assets"
    for ref in refs:
        assert ref.startswith("/"), f"{page} loads {ref!r} from outside the gateway"
        assert not ref.startswith("//"), f"{page} loads {ref!r} protocol-relative"
        asset = client.get(ref)
        assert asset.status_code == 200, f"{page}: {ref} answered {asset.status_code}"
        assert asset.content, f"{page}: {ref} is empty"


def test_docs_page_uses_vendored_swagger_ui(client: TestClient) -> None:
    """/docs loads Swagger UI from /static/vendor and points it at the app's schema."""
    html = client.get("/docs").text
    assert "/swagger-ui/swagger-ui-bundle.js" in html
    assert "/swagger-ui/swagger-ui.css" in html
    assert "'/openapi.json'" in html
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize("name", ["index.html", "app.js", "app.css"])
def test_own_files_name_no_absolute_url(name: str) -> None:
    """The dashboard's own files reference nothing on another host."""
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    found = ABSOLUTE_URL.findall(text)
    assert not found, f"{name} references {found}"


def test_docs_html_names_no_absolute_url(client: TestClient) -> None:
    """The /docs HTML references nothing on another host."""
    found = ABSOLUTE_URL.findall(client.get("/docs").text)
    assert not found, f"/docs references {found}"


def test_app_js_imports_stay_local() -> None:
    """Every ES module import in app.js is a relative path under /static."""
    text = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    static_import = r"""\bimport\s*(?:[^'"]*?\bfrom\s*)?['"]([^'"]+)['"]"""
    specifiers = re.findall(static_import, text)
    specifiers += re.findall(r"""\bimport\(\s*['"]([^'"]+)['"]""", text)
    for specifier in specifiers:
        assert specifier.startswith(("./", "../", "/static/")), specifier


@pytest.mark.parametrize(("path", "url"), VENDORED, ids=[u for _, u in VENDORED])
def test_vendored_file_is_present_and_served(
    client: TestClient, path: Path, url: str
) -> None:
    """Each vendored asset exists, is non-empty and is served by the app itself."""
    assert path.is_file(), f"missing {path}"
    assert path.stat().st_size > 0, f"empty {path}"
    response = client.get(url)
    assert response.status_code == 200
    assert response.content == path.read_bytes()


def test_unknown_static_file_is_404(client: TestClient) -> None:
    """A missing asset answers 404 rather than the dashboard page."""
    assert client.get("/static/does-not-exist.js").status_code == 404
