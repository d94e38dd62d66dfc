"""The one error tree of qtraq-live.

Every layer raises a subclass of :class:`QtraqError`; the web layer turns it into the
API error shape ``{"error": {"code", "message"}}`` with ``status``, the hub into a
WebSocket close code. Nothing else needs to know how errors are rendered.

    QtraqError
    ├── BadRequest          400  malformed JSON or body
    ├── Unauthorized        401  no or invalid credentials   (WebSocket 4401)
    ├── Forbidden           403  authenticated but not allowed, bad CSRF token, bad Origin (4403)
    ├── NotFound            404  unknown id or token         (WebSocket 4404)
    ├── Conflict            409  illegal state transition
    ├── MisdirectedWrite    421  a write sent to a ``--role hub`` process
    ├── PayloadTooLarge     413  body over the size limit
    ├── UnsupportedMediaType 415  a file type not allowed, or content that does not match it
    ├── Invalid             422  a field failed validation (the message names the field)
    ├── RateLimited         429  too many requests (``retry_after`` seconds)
    ├── Unavailable         503  Redis or SQLite unreachable
    └── ConfigError         startup: a bad setting (names the key); never an HTTP answer
"""

from __future__ import annotations


class QtraqError(Exception):
    status = 500
    code = "internal_error"
    close_code = 1011

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(QtraqError):
    status = 400
    code = "bad_request"
    close_code = 1008


class Unauthorized(QtraqError):
    status = 401
    code = "unauthorized"
    close_code = 4401


class Forbidden(QtraqError):
    status = 403
    code = "forbidden"
    close_code = 4403


class NotFound(QtraqError):
    status = 404
    code = "not_found"
    close_code = 4404


class Conflict(QtraqError):
    status = 409
    code = "conflict"
    close_code = 1008


class MisdirectedWrite(QtraqError):
    status = 421
    code = "write_on_hub"


class PayloadTooLarge(QtraqError):
    status = 413
    code = "payload_too_large"
    close_code = 1009


class RequestTimeout(QtraqError):
    status = 408
    code = "request_timeout"


class UnsupportedMediaType(QtraqError):
    status = 415
    code = "unsupported_media_type"
    close_code = 1003


class Invalid(QtraqError):
    status = 422
    code = "invalid_field"
    close_code = 1008

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code)
        self.field = field


class RateLimited(QtraqError):
    status = 429
    code = "rate_limited"
    close_code = 1013

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class Unavailable(QtraqError):
    status = 503
    code = "unavailable"
    close_code = 1013


class ConfigError(QtraqError):
    code = "config_error"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key {key!r}: {message}")
        self.key = key
