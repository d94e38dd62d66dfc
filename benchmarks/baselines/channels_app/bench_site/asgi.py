"""Baseline (c): Django Channels + channels_redis groups, one group per queue, under uvicorn.

A socket at ``/ws/{room}`` joins group ``room`` and gets a snapshot (version 0). ``POST /press`` with ``{"queue", "seq"}``
sends one ``{"type": "update", "queue", "version": seq}`` to the group with ``group_send``:
the way a Channels app usually fans out.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")

import django  # noqa: E402

django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


class QueueConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "snapshot", "version": 0}))

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def queue_update(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["text"])


async def press(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    data = json.loads(request.body)
    text = json.dumps({"type": "update", "queue": data["queue"], "version": data["seq"]})
    await get_channel_layer().group_send(data["queue"], {"type": "queue.update", "text": text})
    return JsonResponse({"ok": True})


urlpatterns = [path("press", press)]

application = ProtocolTypeRouter({
    "http": get_asgi_application(),
    "websocket": URLRouter([path("ws/<str:room>", QueueConsumer.as_asgi())]),
})
