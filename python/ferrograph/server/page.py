"""The web page at `/`: plain HTML, JavaScript and CSS shipped in `static/` (no build step),
which talks to this server's own API from the browser. `/` is also LangGraph's root health
check, so a client that does not ask for HTML (a load balancer, curl) gets `/ok`'s answer."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ferrograph.server.api_assistants import ok

STATIC = Path(__file__).resolve().parent / "static"


async def index(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        # no-cache: the page and its assets change with the installed version
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})
    return await ok(request)


ROUTES = [
    Route("/", index, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
