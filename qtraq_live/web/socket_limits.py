"""A cap on the WebSockets one client address holds open in this process (issue #21 item 9).

One address with one self check-in token could open ten thousand sockets; each costs memory and
a slot in the fan-out. Over ``security.sockets_per_address`` the handshake is refused (close
1013, "try again later"), and the count falls as sockets close, so memory and slots return.
The address is the one uvicorn put in the scope: a trusted proxy's ``X-Forwarded-For`` already
applied (``server.uvicorn_config``), the peer otherwise.
"""

from __future__ import annotations

import logging
from collections import Counter

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

TRY_LATER = 1013


class SocketsPerAddress:
    """ASGI middleware in front of the hub's sockets: at most ``limit`` open per address."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.open: Counter[str] = Counter()  # address -> sockets open now (no entry at 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        address = scope["client"][0] if scope.get("client") else "unknown"
        if self.open[address] >= self.limit:
            log.warning("sockets per address: limit %d reached, one refused", self.limit)
            await receive()  # the websocket.connect message
            # accepted only to say why: a close code the page's reconnect backs off on (a refused
            # handshake would be a bare HTTP 403)
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": TRY_LATER, "reason": "too many sockets"})
            return
        self.open[address] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]
