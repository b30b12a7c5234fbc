"""The operator dashboard: one static page that drives the API from the browser.

The page and its script hold no data and no secret, so they are served without
a token; every number on screen comes from the API calls the script makes with
the Bearer token the operator types in. Only the files shipped in api/static
can be served: the name is looked up in a fixed set, never joined to a path
taken from the request, so `..` tricks have nothing to reach.
"""

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
SECURITY_HEADERS = {
    # The page fetches only its own origin; nothing inline (no script, no style attribute),
    # nothing remote. Charts are SVG built with attributes, colours from app.css classes.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_public(path: str) -> bool:
    """True for the dashboard's own routes, which the auth middleware lets through."""
    return path == "/" or path.startswith("/static/")


def _static_files() -> dict[str, Path]:
    """Name -> file for every servable file, read once at start-up."""
    return {
        path.name: path
        for path in STATIC_DIR.iterdir()
        if path.is_file() and path.suffix in CONTENT_TYPES
    }


def _serve(path: Path) -> web.Response:
    return web.Response(
        body=path.read_bytes(),
        content_type=CONTENT_TYPES[path.suffix],
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def add_dashboard_routes(app: web.Application) -> None:
    """Register GET / (the page) and GET /static/{name} (its script and style)."""
    files = _static_files()

    async def index(_request: web.Request) -> web.Response:
        return _serve(files["index.html"])

    async def static(request: web.Request) -> web.Response:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return _serve(path)

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
