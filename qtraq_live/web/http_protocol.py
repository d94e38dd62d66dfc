"""uvicorn's HTTP protocol with a deadline for each request's headers (issue #21 item 9).

uvicorn times out idle keep-alive connections but not a request whose headers trickle in: 500
connections each sending a header byte now and then (a "slowloris") hold 500 sockets and file
descriptors for ever. This subclass closes a connection whose request headers are not complete
within ``server.header_timeout_s`` of its first byte (or of the connection itself). Bodies have
their own deadline in ``web.middleware`` (408). An adapter of uvicorn's ``HttpToolsProtocol``
(its public hooks only); ``server.uvicorn_config`` picks it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that closes a connection slow to send its request headers."""

    def __init__(self, *args: Any, header_timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        log.info("closed a connection slow to send its request headers")
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing at all

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # each request on a kept-alive connection gets its own deadline

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
