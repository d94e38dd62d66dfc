"""Accounts and their linked patients in SQLite: the body schemas, the rules between fields,
and the reads and writes. Nothing here knows HTTP; callers pass the store and the time.

Rules the schemas cannot express alone: an account needs a name and at least one contact; a
patient other than the account holder needs ``consent_confirmed`` (that person agreed to share
the data; recorded with its time); a patient under 18 added by someone else also needs
``guardian: true`` (the account holder declares to be the parent or lawful guardian and consents
on the child's behalf; recorded with its time).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date
from typing import Any

from .. import phones
from ..errors import Conflict, Invalid, NotFound
from ..languages import LANGS
from ..queue_engine import iso
from ..record.store import Store
from ..validation import EMAIL, EMAIL_MAX, NAME_MAX, Field, Schema
from . import passwords

log = logging.getLogger(__name__)

Json = dict[str, Any]

GENDERS = ("female", "male", "other", "undisclosed")
BLOOD_GROUPS = ("A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-")
RELATIONS = ("self", "child", "parent", "spouse", "other")
ADULT_AGE = 18
MAX_AGE = 130
DATE = r"\d{4}-\d{2}-\d{2}"
TEXT = r".*\S.*"  # not blank

_name = Field("string", required=True, min_length=1, max_length=NAME_MAX, pattern=TEXT)
EMAIL_FIELD = Field("string", nullable=True, max_length=EMAIL_MAX, pattern=EMAIL)
MOBILE_FIELD = phones.FIELD
_gender = Field("string", nullable=True, enum=GENDERS)
_dob = Field("string", nullable=True, pattern=DATE, description="YYYY-MM-DD")
_place = Field("string", nullable=True, min_length=1, max_length=NAME_MAX, pattern=TEXT)
_lang = Field("string", nullable=True, enum=LANGS)
_address = Field("string", nullable=True, min_length=1, max_length=300, pattern=TEXT,
                 description="postal address (optional; kept in account_addresses)")
_flag = Field("boolean", default=False)

CONSENT = Schema({"notifications": _flag, "analytics": _flag, "marketing": _flag})
REGISTER = Schema({
    "name": _name, "email": EMAIL_FIELD, "mobile": MOBILE_FIELD,
    "password": Field("string", required=True, max_length=passwords.MAX_LENGTH),
    "gender": _gender, "date_of_birth": _dob, "state": _place, "city": _place, "lang": _lang,
    "consent": Field("object", schema=CONSENT, nullable=True), "address": _address,
})
ACCOUNT_PATCH = Schema({
    "name": Field("string", min_length=1, max_length=NAME_MAX, pattern=TEXT), "email": EMAIL_FIELD,
    "mobile": MOBILE_FIELD, "gender": _gender, "date_of_birth": _dob, "state": _place, "city": _place,
    "lang": _lang, "address": _address,
    "password": Field("string", max_length=passwords.MAX_LENGTH),
    "current_password": Field("string", max_length=passwords.MAX_LENGTH),
})
PATIENT_FIELDS = {
    "name": _name, "date_of_birth": _dob,
    "age": Field("integer", nullable=True, minimum=0, maximum=MAX_AGE),
    "gender": _gender, "blood_group": Field("string", nullable=True, enum=BLOOD_GROUPS),
    "relation": Field("string", required=True, enum=RELATIONS),
    "consent_confirmed": _flag, "guardian": _flag,
    # how the guardian's consent for a child is verified (DPDP Rules, rule 10; docs/privacy.md)
    "guardian_method": Field("string", nullable=True, enum=("verified_account", "document"),
                             description="verified_account: the guardian's verified contact; document: a token"),
    "guardian_document": Field("string", nullable=True, min_length=4, max_length=120, pattern=r"[A-Za-z0-9._:/-]+",
                               description="reference of the verification token (e.g. DigiLocker)"),
}
PATIENT_NEW = Schema(PATIENT_FIELDS)
PATIENT_PATCH = Schema({k: replace(f, required=False) for k, f in PATIENT_FIELDS.items()})

ACCOUNT_COLUMNS = ("name", "email", "mobile", "gender", "date_of_birth", "state", "city", "lang")
CHANNELS = ("email", "mobile")


def parse_date(field: str, value: str | None, today: date) -> date | None:
    """A real calendar date, not in the future and not before anyone alive was born."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise Invalid(field, "must be a real date YYYY-MM-DD") from None
    if day > today:
        raise Invalid(field, "must not be in the future")
    if today.year - day.year > MAX_AGE:
        raise Invalid(field, f"must be within the last {MAX_AGE} years")
    return day


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _normalise_contacts(body: Json) -> Json:
    """Emails in lower case; mobiles as typed → E.164 (an account belongs to no clinic: the
    server's default region reads a number written without its country code)."""
    if body.get("email"):
        body["email"] = body["email"].lower()
    if "mobile" in body:
        body["mobile"] = phones.optional_e164(body["mobile"])
    return body


async def next_id(db: Store, table: str) -> int:
    """Inside the write transaction: an id above every id the table ever held (erased ones
    included, see ``id_high_water`` in schema/security.sql), so ids are never reused."""
    row = await db.fetchone(f"SELECT max(coalesce((SELECT max(id) FROM {table}), 0),"
                            " coalesce((SELECT last FROM id_high_water WHERE tbl = ?), 0)) + 1 AS id", (table,))
    return int(row["id"]) if row else 1


async def _holders(db: Store, contacts: Json, account_id: int = 0) -> dict[str, Json]:
    """Inside the write transaction: ``{channel: {id, verified}}`` of another account holding
    each email or mobile in ``contacts`` (a contact belongs to one account at a time)."""
    out: dict[str, Json] = {}
    for field in CHANNELS:
        value = contacts.get(field)
        if value:
            row = await db.fetchone(f"SELECT id, {field}_verified AS verified FROM accounts WHERE {field} = ?"
                                    " AND id != ?", (value, account_id))
            if row is not None:
                out[field] = {"id": int(row["id"]), "verified": bool(row["verified"])}
    return out


async def create_account(store: Store, body: Json, now_ms: int, today: date) -> tuple[int, dict[str, Json]]:
    """Insert a validated registration; the consent choices start its history. A contact that
    another account holds is kept as this account's claim (see ``contact_claims``) and the
    answer is the same, so registration tells nobody who is a patient here. Returns the id and
    the holders of the claimed contacts."""
    body = _normalise_contacts(body)
    if not body.get("email") and not body.get("mobile"):
        raise Invalid("email", "an email or a mobile number is required", code="missing_field")
    born = parse_date("date_of_birth", body.get("date_of_birth"), today)
    if born is not None and age_on(born, today) < ADULT_AGE:
        raise Invalid("date_of_birth", "an account holder must be 18 or older: a parent or guardian registers and "
                      "adds the child as a patient", code="minor")
    passwords.check_policy(body["password"])
    consent = body.get("consent") or CONSENT.validate({})
    check_marketing(body.get("date_of_birth"), consent["marketing"], today)
    pw_hash = passwords.hash_password(body["password"])
    async with store.transaction() as db:
        taken = await _holders(db, body)
        columns = {c: (None if c in taken else body.get(c)) for c in ACCOUNT_COLUMNS}
        account_id = await next_id(db, "accounts")
        await db.execute(
            "INSERT INTO accounts (id, name, email, mobile, gender, date_of_birth, state, city, lang,"
            " password_hash, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (account_id, *columns.values(), pw_hash, now_ms, now_ms))
        for channel in taken:
            await db.execute("INSERT INTO contact_claims (account_id, channel, value, created_at) VALUES (?,?,?,?)",
                             (account_id, channel, body[channel], now_ms))
        await _set_address(db, account_id, body.get("address"))
        await db.execute(
            "INSERT INTO account_consent_history (account_id, changed_at, notifications, analytics,"
            " marketing) VALUES (?,?,?,?,?)",
            (account_id, now_ms, consent["notifications"], consent["analytics"], consent["marketing"]))
    log.info("account %d registered", account_id)
    return account_id, taken


def check_marketing(date_of_birth: str | None, marketing: bool, today: date) -> None:
    """No marketing for children: an account holder under 18 cannot opt in."""
    if marketing and date_of_birth and age_on(date.fromisoformat(date_of_birth), today) < ADULT_AGE:
        raise Invalid("marketing", "is not offered to anyone under 18", code="minor")


async def _set_address(db: Store, account_id: int, address: str | None) -> None:
    """Inside a transaction: the account's postal address (None removes it)."""
    if address is None:
        await db.execute("DELETE FROM account_addresses WHERE account_id = ?", (account_id,))
    else:
        await db.execute("INSERT INTO account_addresses (account_id, address) VALUES (?, ?) ON CONFLICT"
                         " (account_id) DO UPDATE SET address = excluded.address", (account_id, address.strip()))


async def get_account_row(store: Store, account_id: int) -> Json:
    """The account's row (with its postal address), with a contact it claims (held by another
    account) in place of the empty column, unverified: the account sees what it asked for."""
    row = await store.fetchone("SELECT a.*, ad.address AS address FROM accounts a LEFT JOIN account_addresses ad"
                               " ON ad.account_id = a.id WHERE a.id = ?", (account_id,))
    if row is None:
        raise NotFound("unknown account")
    found = dict(row)
    for claim in await store.fetchall("SELECT channel, value FROM contact_claims WHERE account_id = ?",
                                      (account_id,)):
        if not found[claim["channel"]]:
            found[claim["channel"]], found[f"{claim['channel']}_verified"] = claim["value"], 0
    return found


async def claim_verified(db: Store, account_id: int, channel: str) -> None:
    """Inside the verifying transaction: the account proved it holds the contact it claims, so
    it takes it from the unverified account holding it (a verified holder keeps it: then no
    code was ever sent for the claim)."""
    claim = await db.fetchone("SELECT value FROM contact_claims WHERE account_id = ? AND channel = ?",
                              (account_id, channel))
    if claim is None:
        return
    holder = await db.fetchone(f"SELECT id, {channel}_verified AS verified FROM accounts WHERE {channel} = ?",
                               (claim["value"],))
    if holder is not None and holder["verified"]:
        raise Conflict(f"channel: this {channel} is verified by another account", code="no_code")
    if holder is not None:
        await db.execute(f"UPDATE accounts SET {channel} = NULL, {channel}_verified = 0 WHERE id = ?", (holder["id"],))
        await db.execute("DELETE FROM account_codes WHERE account_id = ? AND channel = ?", (holder["id"], channel))
        log.info("account %d took its %s back from unverified account %d", account_id, channel, holder["id"])
    await db.execute(f"UPDATE accounts SET {channel} = ? WHERE id = ?", (claim["value"], account_id))
    await db.execute("DELETE FROM contact_claims WHERE account_id = ? AND channel = ?", (account_id, channel))


async def find_login(store: Store, email: str | None, mobile: str | None) -> Json | None:
    if email:
        row = await store.fetchone("SELECT id, password_hash FROM accounts WHERE email = ?", (email.lower(),))
    else:
        row = await store.fetchone("SELECT id, password_hash FROM accounts WHERE mobile = ?", (mobile,))
    return dict(row) if row else None


def account_view(row: Json, consent: Json) -> Json:
    return {
        "id": row["id"], "name": row["name"], "email": row["email"], "mobile": row["mobile"],
        "email_verified": bool(row["email_verified"]), "mobile_verified": bool(row["mobile_verified"]),
        "gender": row["gender"], "date_of_birth": row["date_of_birth"], "state": row["state"],
        "city": row["city"], "address": row.get("address"), "lang": row["lang"], "consent": consent,
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
    }


async def update_account(store: Store, account_id: int, changes: Json, now_ms: int,
                         today: date) -> tuple[list[str], dict[str, Json]]:
    """Correct the fields sent. A changed email or mobile is unverified again (and, when another
    account holds it, kept as a claim, answered alike); returns the channels that now need a
    code and the holders of claimed contacts. A new password needs the current one."""
    changes = _normalise_contacts(dict(changes))
    row = await get_account_row(store, account_id)
    merged = {**row, **changes}
    if not merged.get("email") and not merged.get("mobile"):
        raise Invalid("email", "an email or a mobile number is required", code="missing_field")
    if "name" in changes and changes["name"] is None:
        raise Invalid("name", "must not be null")
    parse_date("date_of_birth", changes.get("date_of_birth"), today)
    sets = {k: changes[k] for k in ACCOUNT_COLUMNS if k in changes}
    if "password" in changes:
        passwords.check_policy(changes["password"])
        if not passwords.verify_password(row["password_hash"], changes.get("current_password") or ""):
            raise Invalid("current_password", "does not match", code="wrong_password")
        sets["password_hash"] = passwords.hash_password(changes["password"])
    reverify = [ch for ch in CHANNELS if ch in sets and sets[ch] != row[ch]]
    for ch in CHANNELS:
        if ch in sets and ch not in reverify:
            del sets[ch]  # unchanged: neither rewritten nor re-verified
    for ch in reverify:
        sets[f"{ch}_verified"] = 0
    if not sets and "address" not in changes:
        return [], {}
    sets["updated_at"] = now_ms
    async with store.transaction() as db:
        if "address" in changes:
            await _set_address(db, account_id, changes["address"])
        taken = await _holders(db, sets, account_id)
        for ch in reverify:
            await db.execute("DELETE FROM account_codes WHERE account_id = ? AND channel = ?", (account_id, ch))
            await db.execute("DELETE FROM contact_claims WHERE account_id = ? AND channel = ?", (account_id, ch))
            if ch in taken:
                await db.execute("INSERT INTO contact_claims (account_id, channel, value, created_at)"
                                 " VALUES (?,?,?,?)", (account_id, ch, sets[ch], now_ms))
                sets[ch] = None
        await db.execute(f"UPDATE accounts SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                         (*sets.values(), account_id))
    return [ch for ch in reverify if changes[ch]], taken


# -- patients -------------------------------------------------------------------------

def _patient_rules(p: Json, today: date) -> None:
    born = parse_date("date_of_birth", p.get("date_of_birth"), today)
    if born is None and p.get("age") is None:
        raise Invalid("age", "give an age or a date_of_birth", code="missing_field")
    if p["relation"] != "self" and not p.get("consent_confirmed"):
        raise Invalid("consent_confirmed", "must be true: confirm that this person agreed to share their data",
                      code="consent_required")
    if p["relation"] != "self" and patient_age(p, today) < ADULT_AGE and not p.get("guardian_declared"):
        raise Invalid("guardian", "must be true: declare that you are the parent or lawful guardian and "
                      "consent on the child's behalf", code="guardian_required")


def patient_age(p: Json, today: date) -> int:
    if p.get("date_of_birth"):
        return age_on(date.fromisoformat(p["date_of_birth"]), today)
    recorded = date.fromisoformat(p.get("age_recorded_on") or today.isoformat())
    return int(p["age"]) + age_on(recorded, today)


def patient_view(row: Json, today: date) -> Json:
    return {
        "id": row["id"], "name": row["name"], "date_of_birth": row["date_of_birth"],
        "age": patient_age(row, today), "gender": row["gender"], "blood_group": row["blood_group"],
        "relation": row["relation"], "consent_confirmed": bool(row["consent_confirmed"]),
        "consent_at": iso(row["consent_at"]), "guardian": bool(row["guardian_declared"]),
        "guardian_at": iso(row["guardian_at"]), "minor": patient_age(row, today) < ADULT_AGE,
        "created_at": iso(row["created_at"]),
    }


PATIENT_COLUMNS = ("name", "date_of_birth", "age", "age_recorded_on", "gender", "blood_group", "relation",
                   "consent_confirmed", "consent_at", "guardian_declared", "guardian_at")


def _stamp(p: Json, old: Json, now_ms: int) -> None:
    """Record when consent / the guardian declaration was given (kept while it stands)."""
    p["consent_at"] = (old.get("consent_at") or now_ms) if p.get("consent_confirmed") else None
    p["guardian_at"] = (old.get("guardian_at") or now_ms) if p.get("guardian_declared") else None


async def _guardian_check(store: Store, account_id: int, p: Json, today: date) -> Json | None:
    """For a child added by someone else: the verification behind the guardian's declaration
    (rule 10): the account's verified contact, or a document token's reference. None otherwise."""
    if p["relation"] == "self" or patient_age(p, today) >= ADULT_AGE:
        return None
    account = await get_account_row(store, account_id)
    verified = next((c for c in CHANNELS if account[c] and account[f"{c}_verified"]), None)
    if verified is None:
        raise Invalid("guardian", "verify your email or mobile first: a guardian's consent for a child is "
                      "recorded against a verified contact", code="guardian_unverified")
    method = p.get("guardian_method") or "verified_account"
    if method == "document" and not p.get("guardian_document"):
        raise Invalid("guardian_document", "is required when guardian_method is document", code="missing_field")
    return {"method": method, "reference": p.get("guardian_document") if method == "document" else None,
            "verified_contact": verified}


async def _record_guardian(db: Store, patient_id: int, check: Json | None, now_ms: int) -> None:
    if check is None:
        await db.execute("DELETE FROM guardian_verifications WHERE patient_id = ?", (patient_id,))
        return
    await db.execute("INSERT INTO guardian_verifications (patient_id, method, reference, verified_contact, at)"
                     " VALUES (?,?,?,?,?) ON CONFLICT (patient_id) DO UPDATE SET method = excluded.method,"
                     " reference = excluded.reference, verified_contact = excluded.verified_contact, at = excluded.at",
                     (patient_id, check["method"], check["reference"], check["verified_contact"], now_ms))


async def add_patient(store: Store, account_id: int, body: Json, now_ms: int, today: date) -> Json:
    p = {**body, "guardian_declared": body.get("guardian", False)}
    p["age_recorded_on"] = today.isoformat() if p.get("age") is not None else None
    _patient_rules(p, today)
    _stamp(p, {}, now_ms)
    guardian = await _guardian_check(store, account_id, p, today)
    async with store.transaction() as db:
        if p["relation"] == "self":
            if await db.fetchone("SELECT 1 FROM patients WHERE account_id = ? AND relation = 'self'", (account_id,)):
                raise Conflict("relation: this account already has its own patient record", code="self_exists")
        patient_id = await next_id(db, "patients")
        await db.execute(
            f"INSERT INTO patients (id, account_id, {', '.join(PATIENT_COLUMNS)}, created_at, updated_at)"
            f" VALUES (?, ?, {', '.join('?' * len(PATIENT_COLUMNS))}, ?, ?)",
            (patient_id, account_id, *(p.get(c) for c in PATIENT_COLUMNS), now_ms, now_ms))
        await _record_guardian(db, patient_id, guardian, now_ms)
    return patient_view(await get_patient(store, account_id, patient_id), today)


async def get_patient(store: Store, account_id: int, patient_id: int) -> Json:
    row = await store.fetchone("SELECT * FROM patients WHERE id = ? AND account_id = ?", (patient_id, account_id))
    if row is None:
        raise NotFound("unknown patient")
    return dict(row)


async def list_patients(store: Store, account_id: int) -> list[Json]:
    return [dict(r) for r in await store.fetchall(
        "SELECT * FROM patients WHERE account_id = ? ORDER BY id", (account_id,))]


async def update_patient(store: Store, account_id: int, patient_id: int, changes: Json,
                         now_ms: int, today: date) -> Json:
    old = await get_patient(store, account_id, patient_id)
    changes = dict(changes)
    if "guardian" in changes:
        changes["guardian_declared"] = changes.pop("guardian")
    for key in ("name", "relation", "consent_confirmed", "guardian_declared"):
        if key in changes and changes[key] is None:
            raise Invalid("guardian" if key == "guardian_declared" else key, "must not be null")
    if changes.get("age") is not None and "date_of_birth" not in changes:
        changes["date_of_birth"] = None  # a new age replaces the date of birth it contradicts
    if changes.get("date_of_birth") is not None and "age" not in changes:
        changes["age"] = None
    if "age" in changes:
        changes["age_recorded_on"] = today.isoformat() if changes["age"] is not None else None
    p = {**old, **changes}
    _patient_rules(p, today)
    _stamp(p, old, now_ms)
    guardian = await _guardian_check(store, account_id, p, today)
    async with store.transaction() as db:
        await _record_guardian(db, patient_id, guardian, now_ms)
        await db.execute(
            f"UPDATE patients SET {', '.join(f'{c} = ?' for c in PATIENT_COLUMNS)}, updated_at = ?"
            " WHERE id = ? AND account_id = ?",
            (*(p.get(c) for c in PATIENT_COLUMNS), now_ms, patient_id, account_id))
    return patient_view(await get_patient(store, account_id, patient_id), today)


async def delete_patient(store: Store, account_id: int, patient_id: int, now_ms: int) -> None:
    """Remove a linked patient; their booked appointments are cancelled and de-identified."""
    await get_patient(store, account_id, patient_id)
    async with store.transaction() as db:
        await db.execute("UPDATE appointments SET status = 'cancelled', updated_at = ? WHERE patient_id = ?"
                         " AND status = 'booked'", (now_ms, patient_id))
        await db.execute("UPDATE appointments SET account_id = NULL, patient_id = NULL WHERE patient_id = ?",
                         (patient_id,))
        await db.execute("DELETE FROM patients WHERE id = ? AND account_id = ?", (patient_id, account_id))


# -- session log ----------------------------------------------------------------------

async def log_session(store: Store, account_id: int, ip: str, os_name: str, browser: str, now_ms: int) -> int:
    """Log a login; returns the log row's id (the live session keeps it, so the account can end it)."""
    async with store.transaction() as db:
        written = await db.execute("INSERT INTO account_sessions (account_id, created_at, ip, os, browser)"
                                   " VALUES (?,?,?,?,?)", (account_id, now_ms, ip, os_name, browser))
    return int(written.lastrowid or 0)


async def list_sessions(store: Store, account_id: int) -> list[Json]:
    rows = await store.fetchall("SELECT id, created_at, ip, os, browser FROM account_sessions WHERE account_id = ?"
                                " ORDER BY created_at DESC, id DESC LIMIT 200", (account_id,))
    return [{"id": r["id"], "at": iso(r["created_at"]), "ip": r["ip"], "os": r["os"], "browser": r["browser"]}
            for r in rows]
