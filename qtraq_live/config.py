"""Settings, declared once.

Each :class:`Setting` names its TOML key, environment variable, default and help text. The
same table feeds validation, ``config/qtraq.example.toml`` and a test that fails when a
setting is undocumented. Precedence: environment > TOML file (``QTRAQ_CONFIG``) > default.
A bad value raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .languages import LANGS


def _as_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(v, str) and v.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _as_list(v: Any) -> list[str]:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    raise ValueError("expected a list of strings or a comma-separated string")


def _as_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    return int(v)


def _as_str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _as_table(v: Any) -> dict[str, str]:
    """A TOML table of strings (``[abdm.counters]``), or ``a=x,b=y`` from the environment."""
    if isinstance(v, str):
        pairs = [item.partition("=") for item in v.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError("expected name=value pairs separated by commas")
        v = {k.strip(): val.strip() for k, _, val in pairs}
    if isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        return dict(v)
    raise ValueError("expected a table of strings")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return str(v)

    return parse


@dataclass(frozen=True)
class Setting:
    key: str  # dotted TOML key, e.g. "server.port"
    default: Any
    help: str
    parse: Callable[[Any], Any] = _as_str
    env: str | None = None  # environment variable that overrides it
    minimum: int | None = None


SETTINGS: list[Setting] = [
    Setting("data_dir", "./var", "Directory for the SQLite record, embedded Redis files and generated secrets.", env="QTRAQ_DATA_DIR"),
    Setting("redis_url", "", "Redis/Valkey URL (redis://, rediss://, unix://, redis+sentinel://host:26379/master). Empty: start the embedded Redis.", env="QTRAQ_REDIS_URL"),
    Setting("secret_key", "", "Signs sessions. Empty: generated once and kept in DATA_DIR/secret_key (refused in production).", env="QTRAQ_SECRET_KEY"),
    Setting("env", "development", "development or production (production: Secure cookies, no generated secret, no default passwords).", _choice("development", "production"), env="QTRAQ_ENV"),
    Setting("log_level", "info", "Log level of every process: debug, info, warning or error.", _choice("debug", "info", "warning", "error"), env="QTRAQ_LOG_LEVEL"),
    Setting("log_format", "auto", "Log lines on stderr: json (one object per line, for collectors), text (for reading), or auto: text on a terminal, json otherwise.", _choice("auto", "json", "text"), env="QTRAQ_LOG_FORMAT"),
    Setting("server.host", "127.0.0.1", "Address `serve` listens on.", env="QTRAQ_HOST"),
    Setting("server.port", 8000, "Port `serve` listens on (0 picks a free one; see DATA_DIR/serve.json).", _as_int, env="QTRAQ_PORT", minimum=0),
    Setting("server.workers", 1, "HTTP/WebSocket processes sharing the port.", _as_int, env="QTRAQ_WORKERS", minimum=1),
    Setting("server.public_url", "", "Base URL patients reach (for links in notices and QR codes). Empty: derived from the request.", env="QTRAQ_PUBLIC_URL"),
    Setting("server.access_log", False, "Log every HTTP request (uvicorn's access log).", _as_bool, env="QTRAQ_ACCESS_LOG"),
    Setting("server.max_body_bytes", 65536, "Largest accepted request body.", _as_int, minimum=1024),
    Setting("server.header_timeout_s", 10, "Seconds a connection may take to send a request's headers before it is closed (slow-header attacks).", _as_int, env="QTRAQ_HEADER_TIMEOUT_S", minimum=1),
    Setting("server.body_timeout_s", 30, "Seconds a request may take to send its body before it is answered 408.", _as_int, env="QTRAQ_BODY_TIMEOUT_S", minimum=1),
    Setting("security.allowed_origins", [], "Origins allowed to open browser WebSockets and send cookie writes. Empty: same host only.", _as_list, env="QTRAQ_ALLOWED_ORIGINS"),
    Setting("security.trusted_proxies", [], "Proxy addresses whose X-Forwarded-For is believed (client IPs in logs and rate limits).", _as_list, env="QTRAQ_TRUSTED_PROXIES"),
    Setting("security.session_hours", 12, "Lifetime of a login session.", _as_int, minimum=1),
    Setting("security.credential_cache_s", 5, "Seconds a process may reuse a staff credential it has checked (a logout reaches every process at once; other ends within this time). 0: check every request.", _as_int, minimum=0),
    Setting("security.join_rate_limit", 20, "Self check-ins one address may make per 10 minutes (clinic Wi-Fi shares one address: keep it generous).", _as_int, minimum=1),
    Setting("security.track_rate_limit", 120, "Ticket-page reads (GET /api/v1/t/{token}) one address may make per minute.", _as_int, minimum=1),
    Setting("security.sockets_per_address", 500, "WebSockets one client address may hold open in total, across every server and hub process sharing Redis (clinic Wi-Fi shares one address: keep it above the waiting room's phones and screens).", _as_int, env="QTRAQ_SOCKETS_PER_ADDRESS", minimum=1),
    Setting("security.socket_lease_s", 30, "Seconds after a server process dies (without stopping) that its sockets stop counting against their addresses' cap; a live process renews its lease every third of this.", _as_int, env="QTRAQ_SOCKET_LEASE_S", minimum=3),
    Setting("security.metrics_token", "", "Bearer token /metrics asks for; set it in the environment. Empty: /metrics answers only to security.metrics_networks.", env="QTRAQ_METRICS_TOKEN"),
    Setting("security.metrics_networks", ["127.0.0.1/32", "::1/128"], "Addresses or networks allowed to read /metrics without the token (the Prometheus host).", _as_list, env="QTRAQ_METRICS_NETWORKS"),
    Setting("security.idle_minutes", 120, "A login session unused for this long ends (as well as after security.session_hours).", _as_int, minimum=1),
    Setting("hub.ping_interval_s", 20, "WebSocket keepalive ping interval; a socket with no pong for as long again is closed.", _as_int, minimum=1),
    Setting("hub.send_queue", 64, "Messages buffered per socket before it is resynced with a fresh snapshot.", _as_int, minimum=1),
    Setting("engine.stream_maxlen", 50000, "Events kept per clinic stream (resume window).", _as_int, minimum=100),
    Setting("notify.email", "", "Apprise URL for email, `{to}` = recipient (e.g. mailtos://user:pass@smtp.example.com?to={to}).", env="QTRAQ_NOTIFY_EMAIL"),
    Setting("notify.sms", "", "Apprise URL for SMS, `{to}` = E.164 phone (e.g. json://gateway.local/send?:to={to}).", env="QTRAQ_NOTIFY_SMS"),
    Setting("notify.whatsapp", "", "Apprise URL for WhatsApp, `{to}` = E.164 phone.", env="QTRAQ_NOTIFY_WHATSAPP"),
    Setting("notify.workers", 2, "RQ worker processes `serve` runs itself in embedded mode.", _as_int, minimum=0),
    Setting("notify.max_attempts", 5, "Send attempts before a notice goes to the dead-letter list.", _as_int, minimum=1),
    Setting("notify.default_lang", "en", f"Language of notices when a ticket or account names none ({', '.join(LANGS)}).", _choice(*LANGS)),
    Setting("notify.retry_base_ms", 10000, "First retry delay after a provider failure; it doubles each attempt, with ±25% jitter.", _as_int, env="QTRAQ_NOTIFY_RETRY_BASE_MS", minimum=0),
    Setting("notify.job_timeout_s", 30, "Longest one send may take; a job whose worker died is retried twice this long after it started.", _as_int, env="QTRAQ_NOTIFY_JOB_TIMEOUT_S", minimum=1),
    Setting("notify.pause_notice_min", 15, "Minutes a queue must stay paused before its waiting patients are told.", _as_int, minimum=1),
    Setting("webhooks.urls", [], "Receivers of signed ticket-event webhooks (docs/integrations.md).", _as_list, env="QTRAQ_WEBHOOK_URLS"),
    Setting("webhooks.secret", "", "HMAC-SHA256 key that signs webhooks; set it in the environment, never in the file.", env="QTRAQ_WEBHOOK_SECRET"),
    Setting("webhooks.max_attempts", 8, "Delivery attempts per webhook before it stays in RQ's failed registry.", _as_int, minimum=1),
    Setting("webhooks.retry_base_s", 5, "First retry delay of a webhook; doubles each attempt, with jitter.", _as_int, env="QTRAQ_WEBHOOK_RETRY_BASE_S", minimum=1),
    Setting("abdm.enabled", False, "Answer ABDM Scan & Share: a patient scans the counter's QR with an ABHA app and gets a live ticket (docs/abdm.md).", _as_bool, env="QTRAQ_ABDM_ENABLED"),
    Setting("abdm.gateway_url", "https://dev.abdm.gov.in", "ABDM gateway base URL: the sandbox by default; https://apis.abdm.gov.in once the facility is approved for production (the API paths under /api/hiecm are added).", env="QTRAQ_ABDM_GATEWAY_URL"),
    Setting("abdm.cm_id", "sbx", "X-CM-ID header: sbx for the sandbox, abdm in production.", _choice("sbx", "abdm"), env="QTRAQ_ABDM_CM_ID"),
    Setting("abdm.client_id", "", "Client id of the bridge registered with ABDM.", env="QTRAQ_ABDM_CLIENT_ID"),
    Setting("abdm.client_secret", "", "Client secret of the bridge: set it in the environment, never in the file (refused there).", env="QTRAQ_ABDM_CLIENT_SECRET"),
    Setting("abdm.hip_id", "", "This facility's HFR id (the HIP id the counter QR names).", env="QTRAQ_ABDM_HIP_ID"),
    Setting("abdm.counters", {}, "Counter QR codes to queues: counter-id = \"queue-id\" (the counter id is the share's metaData.context); in the environment OPD1=gp,OPD2=eye.", _as_table, env="QTRAQ_ABDM_COUNTERS"),
    Setting("abdm.verify", "jwt", "How a callback's caller is checked: jwt (the gateway's signed token against its published keys) or none (only for a local test gateway; refused in production).", _choice("jwt", "none"), env="QTRAQ_ABDM_VERIFY"),
    Setting("abdm.send_link", False, "Send the ticket's watch link by SMS/WhatsApp to the phone number in a shared profile (only when the counter tells patients so: docs/abdm.md).", _as_bool, env="QTRAQ_ABDM_SEND_LINK"),
    Setting("abdm.retry_base_s", 5, "First retry delay of an on-share reply the gateway did not take (5xx, timeout); tripled each time, 5 retries.", _as_int, env="QTRAQ_ABDM_RETRY_BASE_S", minimum=1),
    Setting("abdm.profile_days", 30, "Days a shared ABHA profile (and a registration made from it) is kept after the visit.", _as_int, minimum=1),
    Setting("privacy.fiduciary", "", "Name of the Data Fiduciary (the clinic or hospital) in breach notices. Empty: the clinic's name (for accounts: the names of every clinic here).", env="QTRAQ_FIDUCIARY"),
    Setting("privacy.grievance_contact", "", "Grievance officer contact shown in the portal and on the privacy page.", env="QTRAQ_GRIEVANCE_CONTACT"),
    Setting("privacy.walkin_contact_days", 30, "Days after the visit after which contact details on walk-in tickets are deleted.", _as_int, minimum=1),
    Setting("privacy.notice_version", "2026-12-07", "Version of the privacy notice (/privacy) in force; every consent record stores it. Change it whenever the notice changes.", env="QTRAQ_NOTICE_VERSION"),
    Setting("privacy.security_log_days", 365, "Days the security log (logins, exports, erasures, consent and staff access changes; pseudonymous) is kept: at least a year (DPDP Rules).", _as_int, minimum=365),
    Setting("privacy.session_log_days", 180, "Days an account's login session log (time, IP, OS, browser) is kept.", _as_int, minimum=1),
    # Replies from patients, Web Push, DLT and spoken calls (issue #20; docs/notifications.md).
    Setting("inbound.sms_secret", "", "HMAC-SHA256 key the SMS gateway signs inbound replies with (header X-Signature: sha256=<hex>). Empty: POST /api/v1/inbound/sms answers 404. Set it in the environment.", env="QTRAQ_INBOUND_SMS_SECRET"),
    Setting("inbound.whatsapp_verify_token", "", "The verify token entered in the WhatsApp Cloud API webhook settings (hub.verify_token). Empty: the WhatsApp webhook answers 404.", env="QTRAQ_INBOUND_WHATSAPP_VERIFY_TOKEN"),
    Setting("inbound.whatsapp_app_secret", "", "The Meta app secret that signs WhatsApp webhook posts (X-Hub-Signature-256). Set it in the environment.", env="QTRAQ_INBOUND_WHATSAPP_APP_SECRET"),
    Setting("inbound.late_places", 3, "Places a patient moves back, once per ticket, by replying LATE.", _as_int, minimum=1),
    Setting("inbound.rate_limit", 10, "Replies one phone number may send per 10 minutes; later ones change nothing and get no answer.", _as_int, minimum=1),
    Setting("notify.web_push", True, "Offer Web Push on the ticket page and send notices there first (free per message; VAPID keys are generated in DATA_DIR/vapid.json).", _as_bool),
    Setting("notify.web_push_contact", "", "Contact the push services may write to about our pushes (mailto: or https: URL). Empty: server.public_url, else mailto:admin@localhost.", env="QTRAQ_NOTIFY_WEB_PUSH_CONTACT"),
    Setting("notify.dlt.enabled", False, "India (TRAI DLT): send every SMS with the registered sender and the template id of its notice kind.", _as_bool),
    Setting("notify.dlt.sender", "", "The registered DLT sender id (header), e.g. QTRAQC.", env="QTRAQ_NOTIFY_DLT_SENDER"),
    Setting("notify.dlt.templates", {}, "One registered template id per notice kind, e.g. { called = \"1107161234567890123\" }; with dlt.enabled every kind needs one (docs/notifications.md lists the texts).", _as_table),
    # Patient services (issue #22): documents, feedback, sign-in with an OpenID Connect provider.
    Setting("documents.max_bytes", 10 * 1024 * 1024, "Largest document a patient may upload (JPEG, PNG or PDF), in bytes.", _as_int, minimum=1024),
    Setting("documents.quota_bytes", 50 * 1024 * 1024, "Total bytes of documents one account may keep.", _as_int, minimum=1024),
    Setting("documents.key", "", "Key(s) that encrypt documents at rest: Fernet keys, comma-separated, the first encrypts (rotation). Keep it outside the data dir (environment or secret store). Empty: development generates DATA_DIR/documents.key; production refuses uploads.", env="QTRAQ_DOCUMENTS_KEY"),
    Setting("feedback.days", 7, "Days after the visit during which a patient may rate it.", _as_int, minimum=1),
    Setting("accounts.oidc.issuer", "", "OpenID Connect provider for patient sign-in (e.g. https://accounts.google.com). Empty: off.", env="QTRAQ_OIDC_ISSUER"),
    Setting("accounts.oidc.client_id", "", "Client id registered with the OpenID Connect provider.", env="QTRAQ_OIDC_CLIENT_ID"),
    Setting("accounts.oidc.client_secret", "", "Client secret of that client; set it in the environment, never in the file.", env="QTRAQ_OIDC_CLIENT_SECRET"),
    Setting("accounts.oidc.label", "Google", "Name of the provider on the portal's sign-in button.", env="QTRAQ_OIDC_LABEL"),
    # The waiting-room TV (issue 16).
    Setting("display.serving_clear_min", 30, "Minutes after its call that a TV stops showing a counter's 'now serving' ticket when the counter has called nobody since (0: never).", _as_int, minimum=0),
    Setting("display.page_s", 12, "Seconds each page shows on a TV whose queues do not all fit at a readable size.", _as_int, minimum=3),
    Setting("log_file", "", "Write log lines to this file instead of stderr (the demo logs to DATA_DIR/demo.log so its banner stays readable).", env="QTRAQ_LOG_FILE"),
    Setting("demo.outbox", False, "Demo only (never in production): verification codes also go to the page /demo/outbox, marked as the demo's, so a newcomer can verify without an email or SMS provider.", _as_bool, env="QTRAQ_DEMO_OUTBOX"),
    Setting("display.frozen_after_s", 20, "Seconds without a live connection after which a TV says plainly that it is not updating.", _as_int, minimum=5),
]

_BY_KEY = {s.key: s for s in SETTINGS}
ENV_ONLY = ("abdm.client_secret",)  # secrets refused in the file: a copied config must not leak them
# what one ``qtraq-live serve`` process runs (its ``--role``): "all" is the primary (HTTP, hub and
# the duties, the only writer of the record), "hub" serves the public pages and sockets of a
# scaled-out deployment and refuses writes (docs/deploy/README.md)
PROCESS_MODES = ("all", "hub")


class Settings:
    """Resolved settings. ``settings["notify.sms"]`` or the properties for the common ones."""

    def __init__(self, values: Mapping[str, Any], seed: Mapping[str, Any] | None = None) -> None:
        self._values = dict(values)
        self.seed: dict[str, Any] = dict(seed or {})  # [[clinics]], [[staff]] tables from the TOML

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (keys with dots written as '__')."""
        values = dict(self._values)
        for k, v in changes.items():
            values[k.replace("__", ".")] = v
        return Settings(values, self.seed)

    @property
    def data_dir(self) -> Path:
        return Path(self._values["data_dir"])

    @property
    def redis_url(self) -> str:
        return str(self._values["redis_url"])

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def production(self) -> bool:
        return bool(self._values["env"] == "production")

    @property
    def secret_key(self) -> str:
        return str(self._values["secret_key"])


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in _BY_KEY:  # a setting may itself be a table
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _parse(setting: Setting, raw: Any) -> Any:
    try:
        value = setting.parse(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(setting.key, f"{exc} (got {raw!r})") from None
    if setting.minimum is not None and value < setting.minimum:
        raise ConfigError(setting.key, f"must be at least {setting.minimum} (got {value!r})")
    return value


SEED_TABLES = ("clinics", "staff")
# Keys each seed table accepts (True: required). Values are checked where they are applied.
_SEED_KEYS: dict[str, dict[str, bool]] = {
    "clinics": {"id": True, "name": True, "timezone": False, "mask_names": False, "lang": False,
                "region": False, "queues": False},
    "clinics.queues": {"id": True, "name": True, "prefix": True, "avg_service_s": False,
                       "self_checkin": False, "notify_ahead": False},
    "staff": {"username": True, "role": True, "queues": False, "password_env": True},
}


def _check_tables(name: str, kind: str, tables: Any) -> None:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(name, "expected an array of tables ([[...]])")
    allowed = _SEED_KEYS[kind]
    for i, table in enumerate(tables):
        for key in table:
            if key not in allowed:
                raise ConfigError(f"{name}[{i}].{key}", "unknown key (see config/qtraq.example.toml)")
        for key, required in allowed.items():
            if required and key not in table:
                raise ConfigError(f"{name}[{i}].{key}", "is required")


def _check_seed(seed: Mapping[str, Any]) -> None:
    """Shape of ``[[clinics]]`` (with ``[[clinics.queues]]``) and ``[[staff]]``; passwords
    come only from the environment variable that ``password_env`` names."""
    _check_tables("clinics", "clinics", seed.get("clinics", []))
    for i, clinic in enumerate(seed.get("clinics", [])):
        _check_tables(f"clinics[{i}].queues", "clinics.queues", clinic.get("queues", []))
    _check_tables("staff", "staff", seed.get("staff", []))


def load_settings(environ: Mapping[str, str] | None = None, *, resolve_secret: bool = True) -> Settings:
    """Read ``QTRAQ_CONFIG`` (if set) and the environment; validate every key."""
    env = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    seed: dict[str, Any] = {}
    path = env.get("QTRAQ_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("QTRAQ_CONFIG", f"file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("QTRAQ_CONFIG", f"not valid TOML: {exc}") from None
        seed = {k: doc.pop(k) for k in SEED_TABLES if k in doc}
        _check_seed(seed)
        file_values = _flatten(doc)
        unknown = sorted(set(file_values) - set(_BY_KEY))
        if unknown:
            raise ConfigError(unknown[0], "unknown setting (see config/qtraq.example.toml)")
        for key in ENV_ONLY:
            if file_values.get(key):
                raise ConfigError(key, f"set it in {_BY_KEY[key].env}, never in the file")
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = s.default
        if s.key in file_values:
            raw = file_values[s.key]
        if s.env and env.get(s.env) is not None:
            raw = env[s.env]
        values[s.key] = _parse(s, raw)
    settings = Settings(values, seed)
    if resolve_secret:
        settings = settings.replace(secret_key=resolve_secret_key(settings))
    check_production(settings)
    return settings


def check_production(settings: Settings) -> None:
    """What production cannot run without: a public URL (links and QR codes never follow the
    request's Host header) and a grievance officer to name in the privacy notice (DPDP Rules)."""
    if not settings.production:
        return
    if not settings["server.public_url"].startswith("https://"):
        raise ConfigError("server.public_url", "production needs the https:// address patients reach "
                          "(QTRAQ_PUBLIC_URL): links and QR codes never trust the request's Host header")
    if not settings["privacy.grievance_contact"].strip():
        raise ConfigError("privacy.grievance_contact", "production needs the grievance officer's name and "
                          "contact (QTRAQ_GRIEVANCE_CONTACT), shown in the privacy notice")


def private_dir(path: Path) -> None:
    """Create a data directory readable by this user only (0700); one that exists is left as
    the operator made it. Everything under it is created 0600 (record/store.py, secret_key)."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)  # mode= is filtered by the umask


def resolve_secret_key(settings: Settings) -> str:
    """The configured key, or (development only) one generated once and kept in the data dir."""
    if settings.secret_key:
        if len(settings.secret_key) < 32:
            raise ConfigError("secret_key", "must be at least 32 characters")
        return settings.secret_key
    if settings.production:
        raise ConfigError("secret_key", "QTRAQ_SECRET_KEY is required when QTRAQ_ENV=production")
    path = settings.data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    try:
        private_dir(settings.data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
    except OSError as exc:  # a read-only or full data dir: one clear line, not a traceback
        raise ConfigError("secret_key", f"cannot write {path}: {exc.strerror}") from None
    return key


EXAMPLE_HEADER = """\
# qtraq-live configuration. Point QTRAQ_CONFIG at a copy of this file.
#
# Every setting is listed with its default. Precedence: environment variable > this file >
# default. A bad value stops the server with a message naming the key; an unknown key is
# refused (so a typo never goes unnoticed). This file is generated from qtraq_live/config.py:
#   python -m qtraq_live.config > config/qtraq.example.toml

"""

EXAMPLE_SEED = """\
# ---------------------------------------------------------------------------------------------
# Seeding (optional). Applied at every start of `serve` (role all) and idempotent: a clinic,
# queue or staff user that already exists is left alone, so edits made in /admin win.
# Uncomment and adapt. These tables must come after every setting above.
#
# A clinic with its queues. Optional keys show their defaults.
#
# [[clinics]]
# id = "main"                      # slug used in URLs: /display/main, /api/v1/clinics/main
# name = "Main Street Clinic"
# timezone = "Asia/Kolkata"        # labels restart at midnight here
# mask_names = true                # false: displays show full names instead of "R. S."
# lang = "en"                      # screens and notices: en, hi, ta, te, bn or mr
# region = "IN"                    # ISO 3166 country: how phone numbers without +code are read
#
#   [[clinics.queues]]
#   id = "gp"                      # queue ids are unique across clinics
#   name = "Dr. Rao"
#   prefix = "A"                   # tickets read A-001, A-002, ...
#   avg_service_s = 300            # ETA estimate until real durations are measured
#   self_checkin = true            # patients may join from the QR page /join/gp
#   notify_ahead = 3               # "you are next but N" notice threshold
#
#   [[clinics.queues]]
#   id = "lab"
#   name = "Laboratory"
#   prefix = "L"
#
# A staff user. The password is never written here: `password_env` names the environment
# variable that holds it; an entry whose variable is unset is skipped with a warning.
#
# [[staff]]
# username = "admin"
# role = "admin"                   # admin, reception or doctor
# queues = []                      # doctors: the queues they may call
# password_env = "QTRAQ_ADMIN_PASSWORD"
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # strings and lists of strings are valid TOML as JSON


def example_toml() -> str:
    """The text of ``config/qtraq.example.toml``: every setting with its help and default."""
    tables: dict[str, list[Setting]] = {}
    for s in SETTINGS:  # top-level keys first, then one [table] each, in declaration order
        tables.setdefault(s.key.rpartition(".")[0], []).append(s)
    out = [EXAMPLE_HEADER]
    for table, settings in sorted(tables.items(), key=lambda item: item[0] != ""):
        if table:
            out.append(f"[{table}]\n\n")
        for s in settings:
            doc = s.help + (f" Env: {s.env}." if s.env else "")
            out.extend(f"# {line}\n" for line in textwrap.wrap(doc, 94))
            out.append(f"{s.key.rpartition('.')[2]} = {_toml_value(s.default)}\n\n")
    out.append(EXAMPLE_SEED)
    return "".join(out)


if __name__ == "__main__":  # python -m qtraq_live.config > config/qtraq.example.toml
    sys.stdout.write(example_toml())
