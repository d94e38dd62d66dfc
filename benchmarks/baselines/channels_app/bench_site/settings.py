"""Django settings for baseline (c): the least a Channels app needs, groups on channels_redis."""

from __future__ import annotations

import os

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench_site.asgi"
ASGI_APPLICATION = "bench_site.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 caps a pool at 100 connections; a burst of connects then fails with
        # "Too many connections", which is a configuration slip, not the design under test.
        "CONFIG": {"hosts": [{"address": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                              "max_connections": 1000}]},
    },
}
