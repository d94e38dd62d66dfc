"""The Starlette application: resources in the lifespan, one explicit routing table.

Resources are created here and reached through ``request.app.state``:
``settings``, ``role`` ("all" or "hub"), ``redis`` (async, decoded), ``engine``,
``store`` (None on a hub), ``hub``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from . import redis_conn
from .api import clinics as api_clinics
from .api import health as api_health
from .api import tickets as api_tickets
from .config import Settings
from .hub import Hub
from .hub import routes as hub_routes
from .queue_engine import QueueEngine
from .store import Store
from .web import errors as web_errors
from .web import middleware as web_middleware

API_ROUTES: list[BaseRoute] = [
    *api_clinics.routes,
    *api_tickets.routes,
]


def create_app(settings: Settings, role: str = "all") -> Starlette:
    """Build the app for one process. ``role="hub"`` answers writes with 421 and opens no SQLite."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.role = role
        app.state.redis = redis_conn.async_client(settings)
        app.state.engine = QueueEngine(app.state.redis, stream_maxlen=settings["engine.stream_maxlen"])
        await app.state.engine.load_scripts()
        app.state.store = None
        if role == "all":
            app.state.store = Store(settings.data_dir / "qtraq.db")
            await app.state.store.open()
        app.state.hub = Hub(app.state.engine, settings)
        await app.state.hub.start()
        try:
            yield
        finally:
            await app.state.hub.stop()
            if app.state.store is not None:
                await app.state.store.close()
            await app.state.redis.aclose()

    routes: list[BaseRoute] = [
        *api_health.routes,
        Mount("/api/v1", routes=API_ROUTES),
        *hub_routes,
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=web_errors.exception_handlers(),
        middleware=web_middleware.stack(settings),
    )
