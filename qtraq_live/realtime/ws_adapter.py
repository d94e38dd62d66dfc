"""Which WebSocket protocol uvicorn runs for the hub, and the hub's direct write to a socket.

The adapter for uvicorn's internals (``runtime/fastpaths.py``): ``ws_lean`` serves sockets with
:class:`~qtraq_live.realtime.ws_protocol.LeanWebSocketProtocol` (less memory per idle socket) and
``ws_write`` lets the hub put a message on a socket that can take it at once without an ASGI
message (:meth:`~qtraq_live.realtime.ws_protocol.LeanWebSocketProtocol.write_text`). Both are on only
with the uvicorn and websockets they were written for; otherwise uvicorn's own
``websockets-sansio`` protocol serves the sockets and the hub sends through ASGI ``send``.
This module does not import uvicorn's internals: only uvicorn loads ``ws_protocol``, by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..runtime import fastpaths

LEAN_MODULE = "qtraq_live.realtime.ws_protocol"
LEAN_IMPL = f"{LEAN_MODULE}:LeanWebSocketProtocol"
PUBLIC_IMPL = "websockets-sansio"  # uvicorn's own Sans-I/O protocol on websockets, by its public name
WRITTEN_FOR = (("uvicorn", (0, 54), (0, 56)), ("websockets", (17, 0), (18, 0)))

WS_LEAN = fastpaths.enabled("ws_lean", *WRITTEN_FOR)
WS_WRITE = WS_LEAN and fastpaths.enabled("ws_write", *WRITTEN_FOR)
WS_IMPL = LEAN_IMPL if WS_LEAN else PUBLIC_IMPL  # uvicorn's ``ws`` setting, for serve and the tests


def text_writer(send: Any) -> Callable[[str], bool] | None:
    """The socket's ``write_text`` when ``send`` (a server's ASGI send) is a lean protocol's own
    and ``ws_write`` is on; None otherwise (the hub then sends through ``send``)."""
    if not WS_WRITE:
        return None
    owner = getattr(send, "__self__", None)
    if type(owner).__module__ != LEAN_MODULE:
        return None
    write: Callable[[str], bool] = owner.write_text
    return write
