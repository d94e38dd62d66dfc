"""ABDM Scan & Share against a local fake gateway (tests/fake_abdm.py): a share becomes a live
ticket and a 202, the on-share reply goes out through RQ (a real worker run) with the right token
and requestId, once; the gateway's failures (401 on an expired session, 5xx on on-share), a
repeated share, an unknown counter, a paused queue, a bad or missing JWT; the reception API,
export and erasure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from rq import Queue
from rq.registry import ScheduledJobRegistry

from qtraq_live.abdm import jobs as abdm_jobs
from qtraq_live.abdm import records as abdm_records
from qtraq_live.abdm.duty import abdm_upkeep
from qtraq_live.abdm.protocol import DEDUPE_S, e164, parse_share
from qtraq_live.config import Settings, load_settings
from qtraq_live.engine import redis_keys as keys
from qtraq_live.errors import ConfigError, Invalid
from qtraq_live.metrics import ABDM_REPLIES, ABDM_SHARES
from qtraq_live.record.persister import Persister
from qtraq_live.runtime import redis_conn
from qtraq_live.runtime.duties import DUTIES
from qtraq_live.workers.worker import NoticeWorker
from tests.fake_abdm import CLIENT_ID, CLIENT_SECRET, HIP_ID, NHA_SAMPLE, WRAPPER_SAMPLE, FakeGateway, sample
from tests.support_http import LiveServer, error_of, start_server  # noqa: F401

COUNTERS = {"6": "gp", "OPD2": "eye"}


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as g:
        yield g


def abdm_settings(gateway: FakeGateway, **more: Any) -> dict[str, Any]:
    return {"abdm__enabled": True, "abdm__gateway_url": gateway.url, "abdm__client_id": CLIENT_ID,
            "abdm__client_secret": CLIENT_SECRET, "abdm__hip_id": HIP_ID, "abdm__counters": COUNTERS,
            "abdm__retry_base_s": 1, **more}


@pytest.fixture
def bridge(start_server: Any, gateway: FakeGateway) -> LiveServer:  # noqa: F811
    server: LiveServer = start_server(**abdm_settings(gateway))
    server.clinic("c1", ("gp", "eye"))
    return server


def run_replies(server: LiveServer) -> None:
    """The real RQ worker (``qtraq-live worker``'s class) run over the ABDM queue until it is empty."""
    abdm_jobs.configure(server.settings)
    conn = redis_conn.sync_client(server.settings, decode=False)
    try:
        NoticeWorker([Queue(abdm_jobs.QUEUE, connection=conn)], connection=conn).work(burst=True)
    finally:
        conn.close()


def reply_state(server: LiveServer, request_id: str) -> str:
    conn = redis_conn.sync_client(server.settings)
    try:
        return str(conn.hget(keys.abdm_reply(request_id), "state"))
    finally:
        conn.close()


def count(metric: Any, label: str) -> float:
    return float(metric.labels(label)._value.get())


def test_the_nha_sample_share_becomes_a_live_ticket_and_one_on_share(bridge: LiveServer,
                                                                      gateway: FakeGateway) -> None:
    rid = str(uuid.uuid4())
    issued_before = count(ABDM_SHARES, "issued")
    r = gateway.share(bridge.url, NHA_SAMPLE, request_id=rid)
    assert r.status_code == 202 and r.content == b""
    desk = bridge.staff("reception")
    waiting = desk.get("/queues/gp").json()["waiting"]
    assert [(t["label"], t["name"], t["source"]) for t in waiting] == [("A-001", "John Kumar", "abdm")]
    run_replies(bridge)
    [reply] = gateway.replies_for(rid)
    assert reply["body"] == {"acknowledgement": {"status": "SUCCESS", "abhaAddress": "johnkumar@sbx",
                                                 "profile": {"context": "6", "tokenNumber": "A-001",
                                                             "expiry": str(DEDUPE_S)}},
                             "response": {"requestId": rid}}
    assert reply["headers"]["X-HIP-ID"] == HIP_ID and reply["headers"]["X-CM-ID"] == "sbx"
    assert reply["headers"]["Authorization"].startswith("Bearer ")
    assert gateway.session_requests == [{"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
                                         "grantType": "client_credentials"}]
    assert gateway.errors == [] and gateway.certs_fetched == 1
    assert reply_state(bridge, rid) == "sent"
    run_replies(bridge)  # nothing left to send: never twice
    assert len(gateway.replies_for(rid)) == 1
    assert count(ABDM_SHARES, "issued") == issued_before + 1
    profiles = desk.get("/clinics/c1/abdm/profiles").json()["profiles"]
    assert [(p["name"], p["label"], p["abha_address"], p["gender"]) for p in profiles] == [
        ("John Kumar", "A-001", "johnkumar@sbx", "M")]
    with bridge.db() as db:
        consent = db.execute("SELECT purpose, fields, notify, retain_until - given_at AS kept"
                             " FROM abdm_consents").fetchone()
    assert "this visit" in consent["purpose"] and "phoneNumber" in json.loads(consent["fields"])
    assert consent["notify"] == 0 and consent["kept"] == 30 * 86_400_000


def test_a_repeat_share_gets_the_same_token_and_a_redelivery_nothing(bridge: LiveServer,
                                                                      gateway: FakeGateway) -> None:
    first, again, redelivered = (str(uuid.uuid4()) for _ in range(3))
    assert gateway.share(bridge.url, NHA_SAMPLE, request_id=first).status_code == 202
    assert gateway.share(bridge.url, sample(name="John K"), request_id=again).status_code == 202
    assert gateway.share(bridge.url, NHA_SAMPLE, request_id=first).status_code == 202  # the gateway retried
    other = gateway.share(bridge.url, sample(abhaAddress="asha.rao@sbx", name="Asha Rao"), request_id=redelivered)
    assert other.status_code == 202
    run_replies(bridge)
    tokens = {rid: [r["body"]["acknowledgement"]["profile"]["tokenNumber"] for r in gateway.replies_for(rid)]
              for rid in (first, again, redelivered)}
    assert tokens == {first: ["A-001"], again: ["A-001"], redelivered: ["A-002"]}
    waiting = bridge.staff("reception").get("/queues/gp").json()["waiting"]
    assert [t["label"] for t in waiting] == ["A-001", "A-002"]
    # the same person at another counter is another visit: another queue, another token
    assert gateway.share(bridge.url, sample(context="OPD2"), request_id=str(uuid.uuid4())).status_code == 202
    assert [t["label"] for t in bridge.staff("reception").get("/queues/eye").json()["waiting"]] == ["B-001"]


def test_an_unknown_counter_or_a_paused_queue_gets_an_error_reply(bridge: LiveServer, gateway: FakeGateway) -> None:
    unknown, paused = str(uuid.uuid4()), str(uuid.uuid4())
    assert gateway.share(bridge.url, sample(context="COUNTER-9"), request_id=unknown).status_code == 202
    bridge.run(bridge.engine.pause("gp"))
    assert gateway.share(bridge.url, NHA_SAMPLE, request_id=paused).status_code == 202
    run_replies(bridge)
    assert gateway.replies_for(unknown)[0]["body"] == {
        "error": {"code": "UNKNOWN_COUNTER", "message": "no queue serves counter COUNTER-9"},
        "response": {"requestId": unknown}}
    assert gateway.replies_for(paused)[0]["body"]["error"]["code"] == "QUEUE_PAUSED"
    assert bridge.staff("reception").get("/queues/gp").json()["waiting"] == []
    bridge.run(bridge.engine.resume("gp"))  # the refused share left no 30-minute slot behind
    later = str(uuid.uuid4())
    assert gateway.share(bridge.url, NHA_SAMPLE, request_id=later).status_code == 202
    run_replies(bridge)
    assert gateway.replies_for(later)[0]["body"]["acknowledgement"]["profile"]["tokenNumber"] == "A-001"


def test_an_expired_session_is_renewed_and_a_failing_on_share_retried(bridge: LiveServer,
                                                                       gateway: FakeGateway) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    gateway.share(bridge.url, NHA_SAMPLE, request_id=first)
    run_replies(bridge)
    gateway.expire_sessions()  # the gateway ends the session before its time: 401
    gateway.fail_on_share = 1  # and then answers one on-share with a 500
    retried_before = count(ABDM_REPLIES, "retried")
    gateway.share(bridge.url, sample(abhaAddress="ravi@sbx", name="Ravi"), request_id=second)
    run_replies(bridge)
    assert reply_state(bridge, second) == "retry" and gateway.replies_for(second) == []
    assert count(ABDM_REPLIES, "retried") == retried_before + 1
    assert len(gateway.session_requests) == 2  # renewed after the 401
    conn = redis_conn.sync_client(bridge.settings, decode=False)
    try:  # RQ scheduled the retry; its time comes (what RQ's scheduler does, without the wait)
        registry = ScheduledJobRegistry(abdm_jobs.QUEUE, connection=conn)
        assert registry.get_job_ids() == [f"abdm-on-share-{second}"]
        queue = Queue(abdm_jobs.QUEUE, connection=conn)
        job = queue.fetch_job(f"abdm-on-share-{second}")
        assert job is not None and job.retries_left == 4
        registry.remove(job.id)
        queue.enqueue_job(job)
    finally:
        conn.close()
    run_replies(bridge)
    assert [r["body"]["acknowledgement"]["profile"]["tokenNumber"] for r in gateway.replies_for(second)] == ["A-002"]
    assert reply_state(bridge, second) == "sent"


def test_a_reply_cut_off_mid_call_is_not_sent_again(bridge: LiveServer, gateway: FakeGateway) -> None:
    rid = str(uuid.uuid4())
    gateway.share(bridge.url, NHA_SAMPLE, request_id=rid)
    conn = redis_conn.sync_client(bridge.settings)
    try:
        conn.hset(keys.abdm_reply(rid), "state", "sending")  # a worker died while the gateway had it
    finally:
        conn.close()
    run_replies(bridge)
    assert gateway.replies_for(rid) == [] and reply_state(bridge, rid) == "unknown"


@pytest.mark.parametrize("case", ["missing", "other_key", "expired", "audience", "hs256", "not_jwt"])
def test_a_share_without_the_gateways_signature_is_refused(bridge: LiveServer, gateway: FakeGateway,
                                                           case: str) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {"missing": "", "other_key": gateway.token(key=forger), "expired": gateway.token(exp_in=-120),
             "audience": gateway.token(aud="someone-else"), "hs256": gateway.token(key="x" * 32, alg="HS256"),
             "not_jwt": "not.a.jwt"}[case]
    r = gateway.share(bridge.url, NHA_SAMPLE, token=token)
    assert error_of(r) == (401, "unauthorized")
    assert bridge.staff("reception").get("/queues/gp").json()["waiting"] == []


def test_bad_shares_are_refused_with_the_error_shape(bridge: LiveServer, gateway: FakeGateway) -> None:
    assert error_of(gateway.share(bridge.url, b"{not json")) == (400, "bad_json")
    assert error_of(gateway.share(bridge.url, NHA_SAMPLE, request_id="x")) == (400, "bad_header")
    bad = {"intent": "RECORD_SHARE", **{k: v for k, v in NHA_SAMPLE.items() if k != "intent"}}
    assert error_of(gateway.share(bridge.url, bad)) == (422, "invalid_field")
    for patient in ({"name": "<script>\x07"}, {"gender": "X"}, {"yearOfBirth": "1800"}, {"abhaAddress": None}):
        r = gateway.share(bridge.url, sample(**patient))
        assert error_of(r) == (422, "invalid_field"), patient
    assert bridge.staff("reception").get("/queues/gp").json()["waiting"] == []


def test_html_in_a_shared_name_stays_text(bridge: LiveServer, gateway: FakeGateway) -> None:
    assert gateway.share(bridge.url, sample(name="<img src=x onerror=alert(1)>")).status_code == 202
    profiles = bridge.staff("reception").get("/clinics/c1/abdm/profiles")
    assert profiles.headers["content-type"].startswith("application/json")
    assert profiles.json()["profiles"][0]["name"] == "<img src=x onerror=alert(1)>"


def test_reception_registers_a_shared_profile_in_one_click(bridge: LiveServer, gateway: FakeGateway) -> None:
    gateway.share(bridge.url, NHA_SAMPLE)
    desk = bridge.staff("reception")
    [profile] = desk.get("/clinics/c1/abdm/profiles").json()["profiles"]
    assert profile["age"] >= 36 and "year_of_birth" not in profile
    r = desk.post(f"/abdm/profiles/{profile['id']}/register")
    assert r.status_code == 201 and r.json()["patient"]["visits"] == 1
    assert desk.get("/clinics/c1/abdm/profiles").json()["profiles"] == []
    assert error_of(desk.post(f"/abdm/profiles/{profile['id']}/register")) == (409, "registered")
    assert error_of(desk.post("/abdm/profiles/999/register")) == (404, "not_found")
    assert error_of(desk.post(f"/abdm/profiles/{profile['id']}/register", json={"x": 1})) == (422, "unknown_field")
    assert error_of(bridge.staff("doctor").get("/clinics/c1/abdm/profiles")) == (403, "forbidden")
    assert error_of(bridge.client().get("/clinics/c1/abdm/profiles"))[0] == 401
    assert error_of(desk.get("/clinics/zz/abdm/profiles")) == (404, "not_found")
    # the next visit (after the 30 minutes) links to the same record
    conn = redis_conn.sync_client(bridge.settings)
    try:
        for key in conn.scan_iter("qt:abdm:share:*"):
            conn.delete(key)
    finally:
        conn.close()
    gateway.share(bridge.url, sample(phoneNumber="9123456789"))
    [again] = desk.get("/clinics/c1/abdm/profiles").json()["profiles"]
    patient = desk.post(f"/abdm/profiles/{again['id']}/register").json()["patient"]
    assert (patient["id"], patient["visits"]) == (r.json()["patient"]["id"], 2)
    with bridge.db() as db:
        assert [tuple(r) for r in db.execute("SELECT phone FROM abdm_patients")] == [("+919123456789",)]
        actions = [row[0] for row in db.execute("SELECT action FROM audit_log WHERE action LIKE 'abdm.%'")]
    assert actions == ["abdm.register", "abdm.register"]


def test_export_and_erasure_of_an_abha_holder(bridge: LiveServer, gateway: FakeGateway) -> None:
    gateway.share(bridge.url, NHA_SAMPLE)
    gateway.share(bridge.url, sample(abhaAddress="other@sbx", name="Other Person"))
    admin = bridge.staff("admin")
    [profile, _] = admin.get("/clinics/c1/abdm/profiles").json()["profiles"][::-1]
    admin.post(f"/abdm/profiles/{profile['id']}/register")
    data = admin.get("/abdm/holders/johnkumar@sbx").json()
    assert [p["name"] for p in data["shared_profiles"]] == ["John Kumar"]
    assert len(data["consents"]) == 1 and len(data["patient_records"]) == 1
    assert error_of(bridge.staff("reception").get("/abdm/holders/johnkumar@sbx")) == (403, "forbidden")
    removed = admin.delete("/abdm/holders/johnkumar@sbx").json()["removed"]
    assert removed == {"shared_profiles": 1, "consents": 1, "ticket_names": 0, "ticket_contacts": 0,
                       "patient_records": 1}
    assert error_of(admin.get("/abdm/holders/johnkumar@sbx")) == (404, "not_found")
    waiting = admin.get("/queues/gp").json()["waiting"]  # the ticket stays, without the name
    assert [(t["label"], t["name"]) for t in waiting] == [("A-001", None), ("A-002", "Other Person")]
    assert admin.get("/abdm/holders/other@sbx").status_code == 200


def test_the_watch_link_goes_to_the_shared_phone_only_when_the_clinic_says_so(
        start_server: Any, gateway: FakeGateway) -> None:  # noqa: F811
    server: LiveServer = start_server(**abdm_settings(gateway, abdm__send_link=True))
    server.clinic("c1", ("gp",))
    gateway.share(server.url, NHA_SAMPLE)
    [ticket] = server.staff("reception").get("/queues/gp").json()["waiting"]
    assert ticket["notify"] is True  # the notifier sends the "issued" notice with the watch link
    with server.db() as db:
        assert [tuple(r) for r in db.execute("SELECT mobile FROM ticket_contacts")] == [("+919876543210",)]
        assert [tuple(r) for r in db.execute("SELECT notify FROM abdm_consents")] == [(1,)]


def test_callbacks_are_404_while_abdm_is_off(start_server: Any, gateway: FakeGateway) -> None:  # noqa: F811
    server: LiveServer = start_server()
    server.clinic("c1", ("gp",))
    assert error_of(gateway.share(server.url, NHA_SAMPLE)) == (404, "not_found")
    assert server.staff("reception").get("/clinics/c1/abdm/profiles").json() == {"enabled": False, "profiles": []}


def test_settings_are_checked_at_start(start_server: Any, gateway: FakeGateway, settings: Settings) -> None:  # noqa: F811
    with pytest.raises(ConfigError) as err:
        start_server(**{**abdm_settings(gateway), "abdm__client_secret": ""})
    assert err.value.key == "abdm.client_secret"
    with pytest.raises(ConfigError) as err:
        start_server(**abdm_settings(gateway, abdm__verify="none", env="production", secret_key="k" * 40))
    assert err.value.key == "abdm.verify"


def test_the_share_payload_is_read_as_the_docs_and_care_abdm_send_it() -> None:
    share = parse_share(NHA_SAMPLE)
    assert (share.context, share.abha_address, share.year_of_birth, share.phone) == ("6", "johnkumar@sbx", 1990,
                                                                                      "+919876543210")
    as_ints = sample(dayOfBirth=11, monthOfBirth=6, yearOfBirth=1997, abhaNumber=None)
    as_ints["profile"]["patient"]["address"] = {"line": "x", "pinCode": "560001"}  # care_abdm's spelling
    share = parse_share(as_ints)
    assert (share.day_of_birth, share.abha_number, share.pincode) == (11, None, "560001")
    assert share.dedupe_digest() == parse_share(sample(abhaAddress="JohnKumar@sbx")).dedupe_digest()
    assert [e164(p) for p in ("9876543210", "+91 98765 43210", "12345", "1234567890")] == [
        "+919876543210", "+919876543210", None, None]
    with pytest.raises(Invalid) as err:
        parse_share(sample(dayOfBirth="32"))
    assert err.value.field == "profile.patient.dayOfBirth"


def test_abdm_check_reports_against_the_gateway(gateway: FakeGateway, tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QTRAQ_")}
    env.update({"QTRAQ_DATA_DIR": str(tmp_path), "QTRAQ_ABDM_ENABLED": "true", "QTRAQ_ABDM_GATEWAY_URL": gateway.url,
                "QTRAQ_ABDM_CLIENT_ID": CLIENT_ID, "QTRAQ_ABDM_CLIENT_SECRET": CLIENT_SECRET,
                "QTRAQ_ABDM_HIP_ID": HIP_ID, "QTRAQ_ABDM_COUNTERS": "6=gp",
                "QTRAQ_PUBLIC_URL": "https://clinic.example.in"})
    ok = subprocess.run([sys.executable, "-m", "qtraq_live.cli", "abdm", "check"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "register this bridge URL with ABDM: https://clinic.example.in" in ok.stdout
    assert "https://clinic.example.in/api/v3/hip/patient/share" in ok.stdout and "ready" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "qtraq_live.cli", "abdm", "check"], capture_output=True, text=True,
                         env={**env, "QTRAQ_ABDM_CLIENT_SECRET": "wrong"}, timeout=60)
    assert bad.returncode == 1 and "FAIL  gateway session: the gateway refused" in bad.stdout
    assert CLIENT_SECRET not in ok.stdout + ok.stderr + bad.stdout + bad.stderr
    missing = subprocess.run([sys.executable, "-m", "qtraq_live.cli", "abdm", "check"], capture_output=True, text=True,
                             env={**env, "QTRAQ_ABDM_HIP_ID": ""}, timeout=60)
    assert missing.returncode == 2 and "abdm.hip_id" in missing.stderr


def test_the_secret_is_refused_in_the_config_file(tmp_path: Any) -> None:
    path = tmp_path / "q.toml"
    path.write_text('[abdm]\nclient_secret = "oops"\n[abdm.counters]\nOPD1 = "gp"\n')
    with pytest.raises(ConfigError) as err:
        load_settings({"QTRAQ_CONFIG": str(path), "QTRAQ_DATA_DIR": str(tmp_path)}, resolve_secret=False)
    assert err.value.key == "abdm.client_secret"
    path.write_text('[abdm]\nenabled = true\n[abdm.counters]\nOPD1 = "gp"\n"Counter 2" = "eye"\n')
    s = load_settings({"QTRAQ_CONFIG": str(path), "QTRAQ_DATA_DIR": str(tmp_path),
                       "QTRAQ_ABDM_CLIENT_SECRET": "from-env"}, resolve_secret=False)
    assert s["abdm.counters"] == {"OPD1": "gp", "Counter 2": "eye"} and s["abdm.client_secret"] == "from-env"


def test_retention_purges_old_profiles_consents_and_registrations(bridge: LiveServer, gateway: FakeGateway) -> None:
    gateway.share(bridge.url, NHA_SAMPLE)
    desk = bridge.staff("reception")
    [profile] = desk.get("/clinics/c1/abdm/profiles").json()["profiles"]
    desk.post(f"/abdm/profiles/{profile['id']}/register")
    store, redis_ = bridge.app.state.store, bridge.app.state.redis
    assert bridge.run(Persister(redis_, store).drain()) > 0  # the ticket's row, with its name
    now_ms = profile["created_at"]
    kept = bridge.run(abdm_records.purge(store, redis_, 30, now_ms + 29 * 86_400_000))
    assert not any(kept.values())
    removed = bridge.run(abdm_records.purge(store, redis_, 30, now_ms + 31 * 86_400_000))
    assert removed == {"shared_profiles": 1, "consents": 1, "ticket_names": 1, "ticket_contacts": 0,
                       "patient_records": 1}
    assert bridge.run(redis_.hget(keys.ticket(profile["ticket_id"]), "name")) == ""
    assert abdm_upkeep in DUTIES


def test_simultaneous_identical_shares_make_one_ticket(bridge: LiveServer, gateway: FakeGateway) -> None:
    rids = [str(uuid.uuid4()) for _ in range(6)]
    with ThreadPoolExecutor(len(rids)) as pool:
        answers = list(pool.map(lambda rid: gateway.share(bridge.url, NHA_SAMPLE, request_id=rid).status_code, rids))
    assert answers == [202] * len(rids)
    assert [t["label"] for t in bridge.staff("reception").get("/queues/gp").json()["waiting"]] == ["A-001"]
    run_replies(bridge)
    assert {gateway.replies_for(rid)[0]["body"]["acknowledgement"]["profile"]["tokenNumber"] for rid in rids} == {
        "A-001"}
    with bridge.db() as db:
        assert db.execute("SELECT count(*) FROM abdm_profiles").fetchone()[0] == 1


def test_registering_from_another_site_needs_the_csrf_token(bridge: LiveServer, gateway: FakeGateway) -> None:
    gateway.share(bridge.url, NHA_SAMPLE)
    desk = bridge.staff("reception")
    [profile] = desk.get("/clinics/c1/abdm/profiles").json()["profiles"]
    del desk.headers["X-CSRF-Token"]  # a cross-site form carries the cookie but not the token
    assert error_of(desk.post(f"/abdm/profiles/{profile['id']}/register"))[0] == 403
    assert len(desk.get("/clinics/c1/abdm/profiles").json()["profiles"]) == 1


def test_a_flood_of_forged_callbacks_is_refused_without_flooding_the_gateway(bridge: LiveServer,
                                                                              gateway: FakeGateway) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [gateway.token(key=forger, kid=f"kid-{i}") for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda token: gateway.share(bridge.url, NHA_SAMPLE, token=token).status_code, forged))
    assert answers == [401] * len(forged)
    assert gateway.certs_fetched == 1  # one fetch for the first; unknown kids refetch at most once a minute
    assert bridge.staff("reception").get("/queues/gp").json()["waiting"] == []
    assert gateway.share(bridge.url, NHA_SAMPLE).status_code == 202  # the real gateway still gets through


def test_verify_none_takes_a_local_test_gateway_without_a_token(start_server: Any,  # noqa: F811
                                                                gateway: FakeGateway) -> None:
    server: LiveServer = start_server(**abdm_settings(gateway, abdm__verify="none"))
    server.clinic("c1", ("gp",))
    assert gateway.share(server.url, NHA_SAMPLE, token="").status_code == 202
    assert gateway.certs_fetched == 0


def test_the_nha_wrapper_sample_profile_gets_its_token(start_server: Any, gateway: FakeGateway) -> None:  # noqa: F811
    server: LiveServer = start_server(**abdm_settings(gateway, abdm__hip_id="Predator_HIP",
                                                      abdm__counters={"COUNTER_001": "gp"}))
    server.clinic("c1", ("gp",))
    rid = str(uuid.uuid4())
    assert gateway.share(server.url, WRAPPER_SAMPLE, request_id=rid).status_code == 202
    run_replies(server)
    [reply] = gateway.replies_for(rid)
    assert reply["body"]["acknowledgement"] == {"status": "SUCCESS", "abhaAddress": "ajitesh6x@sbx", "profile": {
        "context": "COUNTER_001", "tokenNumber": "A-001", "expiry": "1800"}}
    [profile] = server.staff("reception").get("/clinics/c1/abdm/profiles").json()["profiles"]
    assert (profile["name"], profile["abha_number"], profile["gender"]) == ("Venu Ajitesh", "91-1234-1234-1234", "M")
    with server.db() as db:
        row = db.execute("SELECT phone, day_of_birth, month_of_birth, address_line FROM abdm_profiles").fetchone()
    assert tuple(row) == ("+919999999999", 5, 5, None)  # the phone from identifiers[type=MOBILE]


def test_while_the_gateways_keys_are_unreachable_shares_wait_and_the_gateway_is_not_flooded(
        bridge: LiveServer, gateway: FakeGateway) -> None:
    gateway.certs_down = True
    answers = [gateway.share(bridge.url, NHA_SAMPLE).status_code for _ in range(5)]
    assert answers == [503] * 5 and gateway.certs_fetched == 1  # one try a minute
    assert bridge.staff("reception").get("/queues/gp").json()["waiting"] == []


def test_a_hub_sends_the_callback_to_the_primary(start_server: Any, gateway: FakeGateway) -> None:  # noqa: F811
    hub: LiveServer = start_server("hub", **abdm_settings(gateway))
    assert error_of(gateway.share(hub.url, NHA_SAMPLE)) == (421, "write_on_hub")


def test_reception_lists_only_todays_shares(bridge: LiveServer, gateway: FakeGateway) -> None:
    gateway.share(bridge.url, NHA_SAMPLE)
    gateway.share(bridge.url, sample(abhaAddress="asha.rao@sbx", name="Asha Rao"))
    with bridge.db() as db:  # the first came yesterday (the clinic is on UTC)
        db.execute("UPDATE abdm_profiles SET created_at = created_at - 86400000 WHERE abha_address = 'johnkumar@sbx'")
    profiles = bridge.staff("reception").get("/clinics/c1/abdm/profiles").json()["profiles"]
    assert [p["name"] for p in profiles] == ["Asha Rao"]
