"""Documents for a visit against the running server: upload checked by content, metadata
stripped, encrypted at rest under random names, staff access through the appointment only
(audited), export as a zip, erasure that removes every file; and the abuse cases: oversized,
disguised and over-quota uploads."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from qtraq_live.config import Settings
from tests.support_accounts import (Clinic, Patient, add_patient, clinic, fast_account_hashes,  # noqa: F401
                                    register, with_channels)
from tests.support_http import LiveServer, error_of, live_server, use_fast_hashes

GPS_IFD = 0x8825


@pytest.fixture
def portal(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The accounts portal with a small per-account quota (so the quota test stays small)."""
    use_fast_hashes(monkeypatch)
    fast_account_hashes(monkeypatch)
    with live_server(with_channels(settings).replace(documents__quota_bytes=400_000)) as live:
        live.clinic("c1", ("gp", "eye"))
        yield live


def photo_with_gps(size: tuple[int, int] = (640, 480), fmt: str = "JPEG") -> bytes:
    """A real picture carrying an EXIF GPS position and a camera comment."""
    img = Image.new("RGB", size, (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[GPS_IFD] = {1: "N", 2: (28.0, 36.0, 50.0), 3: "E", 4: (77.0, 12.0, 30.0)}
    out = io.BytesIO()
    img.save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def upload(p: Patient, patient_id: int, name: str, data: bytes, ctype: str = "application/octet-stream",
           **fields: str) -> httpx.Response:
    return p.client.post(f"/me/patients/{patient_id}/documents", files={"file": (name, data, ctype)}, data=fields)


def stored_files(live: LiveServer) -> list[Path]:
    folder = live.settings.data_dir / "documents"
    return sorted(folder.iterdir()) if folder.exists() else []


def booked(p: Patient, clinic_: Clinic, patient_id: int) -> int:
    r = p.post("/me/appointments", {"patient": patient_id, "queue": clinic_.by_date, "date": clinic_.today(),
                                    "payment_method": "upi"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_an_image_is_re_encoded_without_its_gps_and_stored_encrypted(portal: LiveServer) -> None:
    p = register(portal)
    me = add_patient(p)
    original = photo_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the fixture really carries GPS
    r = upload(p, me["id"], "../../etc/x-ray <b>.jpg", original, "image/jpeg")
    assert r.status_code == 201, r.text
    doc = r.json()["document"]
    assert doc["type"] == "image/jpeg" and doc["name"] == "x-ray _b_.jpg" and len(doc["id"]) >= 22
    got = p.get(f"/me/documents/{doc['id']}")
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    clean = Image.open(io.BytesIO(got.content))
    assert clean.size == (640, 480) and not clean.getexif() and b"SecretCam" not in got.content
    thumb = p.get(f"/me/documents/{doc['id']}", params={"thumb": 1})
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    files = stored_files(portal)
    assert len(files) == 2  # the picture and its thumbnail, under random names
    for f in files:
        raw = f.read_bytes()
        assert not raw.startswith(b"\xff\xd8") and b"SecretCam" not in raw and doc["id"] not in f.name
    assert p.get("/me/documents").json()["documents"] == [doc]


def test_png_and_pdf_are_accepted_by_content_whatever_their_names(portal: LiveServer) -> None:
    p = register(portal)
    me = add_patient(p)
    png = io.BytesIO()
    Image.new("RGBA", (50, 30), (0, 0, 255, 128)).save(png, "PNG")
    r = upload(p, me["id"], "scan.jpeg", png.getvalue(), "image/jpeg")  # misnamed but real: what it is counts
    assert r.status_code == 201 and r.json()["document"]["type"] == "image/png"
    r = upload(p, me["id"], "report", PDF, "text/plain")
    assert r.status_code == 201 and r.json()["document"]["type"] == "application/pdf"
    got = p.get(f"/me/documents/{r.json()['document']['id']}")
    assert got.content == PDF and got.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize(("name", "data", "ctype", "code"), [
    ("report.pdf", b"<html><script>alert(1)</script></html>", "application/pdf", "type_not_allowed"),
    ("photo.jpg", b"MZ\x90\x00" + b"\x00" * 200, "image/jpeg", "type_not_allowed"),
    ("fake.png", b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20, "image/png", "content_mismatch"),
    ("fake.jpg", b"\xff\xd8\xff\xe0" + b"garbage" * 30, "image/jpeg", "content_mismatch"),
    ("cut.pdf", b"%PDF-1.7\n" + b"x" * 5000, "application/pdf", "content_mismatch"),
    ("vector.svg", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "image/svg+xml",
     "type_not_allowed"),
])
def test_disguised_files_are_refused_with_415_and_leave_nothing(portal: LiveServer, name: str, data: bytes,
                                                                 ctype: str, code: str) -> None:
    p = register(portal)
    me = add_patient(p)
    assert error_of(upload(p, me["id"], name, data, ctype)) == (415, code)
    assert p.get("/me/documents").json()["documents"] == [] and stored_files(portal) == []


def test_oversized_uploads_and_the_quota_answer_413(portal: LiveServer) -> None:
    p = register(portal)
    me = add_patient(p)
    limit = portal.settings["documents.max_bytes"]
    big = PDF[:-7] + b"\0" * (limit + 10) + b"%%EOF\n"
    assert error_of(upload(p, me["id"], "big.pdf", big))[0] == 413
    # Within the size limit but over the account's quota (400 kB here): refused, nothing kept.
    chunk = PDF[:-7] + b"\0" * 150_000 + b"%%EOF\n"
    assert upload(p, me["id"], "a.pdf", chunk).status_code == 201
    assert upload(p, me["id"], "b.pdf", chunk).status_code == 201
    assert error_of(upload(p, me["id"], "c.pdf", chunk)) == (413, "quota_exceeded")
    assert len(p.get("/me/documents").json()["documents"]) == 2 and len(stored_files(portal)) == 2


def test_bad_forms_and_foreign_patients_are_refused(portal: LiveServer) -> None:
    p, other = register(portal), register(portal)
    me = add_patient(p)
    theirs = add_patient(other)
    assert error_of(upload(p, theirs["id"], "a.pdf", PDF)) == (404, "not_found")
    assert error_of(p.client.post(f"/me/patients/{me['id']}/documents", json={"file": "x"}))[0] == 415
    assert error_of(p.client.post(f"/me/patients/{me['id']}/documents", data={"x": "1"},
                                  files={"file": ("a.pdf", PDF)})) == (422, "unknown_field")
    assert error_of(p.client.post(f"/me/patients/{me['id']}/documents",
                                  files={"appointment": (None, "1")}))[1] == "missing_field"
    assert error_of(upload(p, me["id"], "a.pdf", PDF, appointment="999"))[0] == 422
    broken = p.client.post(f"/me/patients/{me['id']}/documents", content=b"--x\r\nnot a part at all",
                           headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert error_of(broken)[0] in (400, 422)
    doc = upload(p, me["id"], "a.pdf", PDF).json()["document"]
    assert error_of(other.get(f"/me/documents/{doc['id']}")) == (404, "not_found")
    assert error_of(other.client.delete(f"/me/documents/{doc['id']}")) == (404, "not_found")
    assert error_of(portal.client().post(f"/me/patients/{me['id']}/documents", files={"file": ("a.pdf", PDF)}))[0] \
        == 401


def test_staff_see_documents_only_through_the_appointment_and_every_view_is_audited(
        portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    me = add_patient(p)
    appt = booked(p, clinic, me["id"])
    attached = upload(p, me["id"], "blood.pdf", PDF, appointment=str(appt)).json()["document"]
    loose = upload(p, me["id"], "other.pdf", PDF).json()["document"]
    assert attached["appointment"] == appt and loose["appointment"] is None
    desk = portal.staff("reception")
    listed = desk.get(f"/appointments/{appt}/documents")
    assert listed.status_code == 200 and [d["id"] for d in listed.json()["documents"]] == [attached["id"]]
    assert desk.get(f"/documents/{attached['id']}").content == PDF
    assert error_of(desk.get(f"/documents/{loose['id']}")) == (404, "not_found")  # not attached: not theirs
    own_doctor = portal.staff("doctor", (clinic.by_date,))
    assert own_doctor.get(f"/documents/{attached['id']}").status_code == 200
    other_doctor = portal.staff("doctor", (clinic.slotted,))
    assert error_of(other_doctor.get(f"/documents/{attached['id']}")) == (403, "not_your_queue")
    assert error_of(other_doctor.get(f"/appointments/{appt}/documents")) == (403, "not_your_queue")
    assert error_of(p.get(f"/documents/{attached['id']}"))[0] == 401  # an account is not staff
    with portal.db() as db:
        rows = db.execute("SELECT action, target FROM audit_log WHERE action LIKE '%document%'").fetchall()
    doc_row = db_id(portal, attached["id"])
    assert sorted(tuple(r) for r in rows) == sorted([
        ("appointment.documents", f"appointment:{appt}"), ("document.view", f"document:{doc_row}"),
        ("document.view", f"document:{doc_row}")])


def db_id(live: LiveServer, public_id: str) -> int:
    with live.db() as db:
        return int(db.execute("SELECT id FROM documents WHERE public_id = ?", (public_id,)).fetchone()[0])


def test_export_is_a_zip_with_the_json_and_erasure_removes_every_file(portal: LiveServer, clinic: Clinic) -> None:
    p = register(portal)
    with portal.db() as db:  # a guardian's contact is verified (the code itself is tested elsewhere)
        db.execute("UPDATE accounts SET mobile_verified = 1 WHERE id = ?", (p.id,))
    me = add_patient(p)
    child = add_patient(p, name="Ravi Verma", relation="child", age=7, consent_confirmed=True, guardian=True,
                        guardian_method="document", guardian_document="digilocker:TEST-2")
    jpeg = upload(p, me["id"], "scan.jpg", photo_with_gps((120, 90)), appointment=str(booked(p, clinic, me["id"])))
    upload(p, child["id"], "vaccines.pdf", PDF)
    assert [d["name"] for d in p.get("/me/export").json()["documents"]] == ["scan.jpg", "vaccines.pdf"]
    z = zipfile.ZipFile(io.BytesIO(p.get("/me/export", params={"format": "zip"}).content))
    names = z.namelist()
    assert "my-data.json" in names and any(n.endswith("-vaccines.pdf") for n in names)
    assert z.read(next(n for n in names if n.endswith("-vaccines.pdf"))) == PDF
    assert len(stored_files(portal)) == 3  # two documents and the picture's thumbnail
    # Removing the child removes the child's file; deleting a document removes it and its thumbnail.
    assert p.client.delete(f"/me/patients/{child['id']}").status_code == 204
    assert len(stored_files(portal)) == 2
    assert p.client.delete(f"/me/documents/{jpeg.json()['document']['id']}").status_code == 204
    assert stored_files(portal) == []
    upload(p, me["id"], "again.pdf", PDF)
    assert p.client.delete("/me").status_code == 204
    assert stored_files(portal) == []
    with portal.db() as db:
        assert db.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
