"""The web console's static files (product.md §6 "Web console"): ``GET /`` is ``index.html``,
``GET /console/<name>`` the scripts and the style sheet of ``admin/console/``.

Both paths are public (``admin.app.PUBLIC_PATHS``/``PUBLIC_PREFIXES``): the page itself holds no
data; it asks for the admin token and sends it with every API call. Only files present in
``admin/console/`` when the app is made can be served, looked up by exact name in a table, so
no request path (``..``, ``%2e%2e``, an absolute path) ever reaches the file system. Responses
say ``Cache-Control: no-cache`` (an upgraded server's console is picked up at once) and carry an
ETag, so the revalidation is a 304 without a body.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

CONSOLE_DIR = Path(__file__).with_name("console")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Scripts, styles and API calls from this origin only; nothing inline, no frames.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
FILES_KEY: web.AppKey[dict[str, Path]] = web.AppKey("console_files", dict)


def console_files(directory: Path = CONSOLE_DIR) -> dict[str, Path]:
    """The servable files by name: regular files of ``directory`` with a known type."""
    return {p.name: p for p in sorted(directory.iterdir())
            if p.is_file() and p.suffix in CONTENT_TYPES and not p.name.startswith(".")}


def _serve(request: web.Request, name: str) -> web.Response:
    path = request.app[FILES_KEY].get(name)
    if path is None:
        raise web.HTTPNotFound()
    body = path.read_bytes()  # a few small files, read per request: edits show without restart
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Content-Type": CONTENT_TYPES[path.suffix],
        "Cache-Control": "no-cache",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if path.suffix == ".html":
        headers["Content-Security-Policy"] = CSP
        headers["X-Frame-Options"] = "DENY"
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers={k: v for k, v in headers.items()
                                                 if k != "Content-Type"})
    return web.Response(body=body, headers=headers)


async def index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def static(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


def setup(app: web.Application) -> None:
    """Add the console's routes to the admin app."""
    app[FILES_KEY] = console_files()
    app.router.add_get("/", index)
    app.router.add_get("/console/{name}", static)
