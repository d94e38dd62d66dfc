"""The Starlette application: resources in the lifespan, one explicit routing table.

Resources are created here and reached through ``request.app.state``:
``settings``, ``mode`` ("all" or "hub": ``config.PROCESS_MODES``), ``redis`` (async, decoded), ``engine``,
``store`` (None on a hub), ``hub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from ..abdm import commands as abdm_commands
from ..abdm import routes as abdm_routes
from ..accounts import api as accounts_api
from ..accounts import api_appointments as accounts_appointments
from ..accounts import api_broadcast, api_documents, api_feedback, api_oidc, api_payments
from ..accounts import day_list as accounts_day_list
from ..accounts import page as accounts_page
from ..accounts import passwords as account_passwords
from ..api import admin as api_admin
from ..api import admin_staff as api_admin_staff
from ..api import audit_log as api_audit_log
from ..api import auth_routes as api_auth
from ..api import clinics as api_clinics
from ..api import docs as api_docs
from ..api import health as api_health
from ..api import inbound as api_inbound
from ..api import notifications as api_notifications
from ..api import public as api_public
from ..api import push as api_push
from ..api import queues as api_queues
from ..api import set_aside as api_set_aside
from ..api import speech as api_speech
from ..api import tickets as api_tickets
from ..api import walkin_privacy as api_walkin_privacy
from ..config import PROCESS_MODES, Settings
from ..display import i18n
from ..display import landing as display_landing
from ..display import pages as display_pages
from ..errors import Unavailable
from ..hub import Hub
from ..queue_engine import QueueEngine
from ..realtime.hub_sockets import HubSockets
from ..record.store import Store
from ..runtime import gc_policy, redis_conn
from ..speech import languages as speech_languages
from ..workers import vapid
from . import demo_outbox
from . import errors as web_errors
from . import middleware as web_middleware
from . import request as web_request
from .auth import CredentialCache
from .socket_limits import AddressCap, SocketsPerAddress

log = logging.getLogger(__name__)


# Everything under /api/v1, one line per resource module. Add yours here.
API_ROUTES: list[BaseRoute] = [
    *api_auth.routes,
    *api_clinics.routes,
    *api_queues.routes,
    *api_tickets.routes,
    *api_public.routes,
    *api_admin.routes,
    *api_admin_staff.routes,
    *api_walkin_privacy.routes,
    *api_notifications.routes,
    *accounts_api.routes,
    *accounts_appointments.routes,
    *api_audit_log.routes,
    *api_documents.routes, *api_feedback.routes, *api_broadcast.routes, *api_payments.routes,  # patient services (#22)
    *api_oidc.routes,
    *accounts_day_list.routes,
    *api_set_aside.routes,
    *api_docs.routes,
    *abdm_routes.api_routes,
    *api_inbound.routes,
    *api_push.routes,
    *api_speech.routes,
]


def create_app(settings: Settings, mode: str = "all") -> Starlette:
    """Build the app for one process. ``mode="hub"`` answers writes with 421 and opens no SQLite."""
    if mode not in PROCESS_MODES:
        raise ValueError(f"role must be one of {PROCESS_MODES}, not {mode!r}")
    web_request.trusted_networks(settings)  # a bad proxy entry fails at start, not per request
    abdm_commands.check_settings(settings)  # ABDM enabled without its credentials fails at start
    i18n.load_all()  # the page catalogues too (docs/languages.md)
    socket_cap = AddressCap(settings["security.sockets_per_address"], settings["security.socket_lease_s"])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.redis = redis_conn.async_client(settings)
        app.state.engine = QueueEngine(app.state.redis, stream_maxlen=settings["engine.stream_maxlen"])
        try:
            await app.state.engine.load_scripts()
        except Unavailable:
            # Start anyway: /readyz says 503 until Redis answers, and the script loads on first use.
            log.warning("Redis unreachable at start; serving, not ready")
        app.state.store = None
        if mode == "all":
            app.state.store = Store(settings.data_dir / "qtraq.db")
            await app.state.store.open()
        if mode == "all":  # issue #20: the Web Push key and the clinics' languages, into Redis
            await vapid.publish_at_start(app.state.redis, settings)
            await speech_languages.mirror_at_start(app.state.store, app.state.redis)
            await asyncio.to_thread(account_passwords.warm)  # account logins are the primary's
        app.state.credentials = CredentialCache(app.state.redis, settings["security.credential_cache_s"])
        await socket_cap.start(app.state.redis)  # its lease in Redis: the cap holds across processes
        app.state.hub = Hub(app.state.engine, settings)
        await app.state.hub.start()
        tasks = [asyncio.create_task(gc_policy.freeze_survivors(), name="gc-policy"),
                 asyncio.create_task(app.state.credentials.watch(), name="credential-invalidations")]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # the subscription closes before the pool
            await app.state.hub.stop()
            await socket_cap.stop()
            if app.state.store is not None:
                await app.state.store.close()
            await app.state.redis.aclose()

    routes: list[BaseRoute] = [
        Mount("/api/v1", routes=API_ROUTES),  # first: the router tries routes in turn
        *api_health.routes,
        *api_docs.page_routes,
        *display_pages.routes,
        *display_landing.routes,
        *demo_outbox.routes,
        *accounts_page.routes,
        *abdm_routes.routes,  # ABDM calls {bridge}/api/v3/hip/patient/share: at the root
        Mount("/static", app=StaticFiles(packages=[("qtraq_live.display", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=web_errors.exception_handlers(),
        middleware=[Middleware(SocketsPerAddress, cap=socket_cap),
                    Middleware(HubSockets), *web_middleware.stack(settings, mode)],
    )
    app.state.settings = settings
    app.state.mode = mode
    app.state.socket_cap = socket_cap
    return app
