"""The status page's files (HTML, CSS, script, icon), served at `/` without the token.

Why without the token: they hold no data (every number on the page comes from a data route that
needs the token), and a browser's navigation to `/` cannot carry an Authorization header; the
alternatives, a cookie or the token in the URL, would either add a second way in or leak the token
into the browser's history. The page's script asks for the token once and sends it as a Bearer
header on every data request.

Why these headers: a Content-Security-Policy that allows only this origin's script and style and
no inline code, so journal text that reached the page could not run even if it were ever written as
HTML (the script writes every value with textContent); `no-cache` so a bridge upgraded in place
serves its new page at the next load.
"""

from __future__ import annotations

from importlib import resources

from .server import Request, Response, Route

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
FILES = {  # URL path -> (file in josev_bridge/api/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


class StaticFile:
    """One file, read once at start (a few kilobytes; the board's flash is not read per request)."""

    def __init__(self, name: str, content_type: str) -> None:
        self._data = resources.files(__package__).joinpath("static", name).read_bytes()
        self._type = content_type

    def __call__(self, request: Request) -> Response:
        return Response({}, raw=self._data, content_type=self._type,
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


def static_routes() -> dict[str, Route]:
    return {path: StaticFile(name, kind) for path, (name, kind) in FILES.items()}
