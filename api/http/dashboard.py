"""The dashboard page at `/`: static HTML, CSS and JavaScript served by the app (no build step).

The page holds no data: its script reads the API with the bearer token the
operator gives it (kept in the browser's localStorage; a ``#token=...``
fragment, which never reaches a server log, fills it in once).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse

STATIC = Path(__file__).parent / "static"


def mount_dashboard(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard_page():
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
