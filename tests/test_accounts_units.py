"""The accounts area's pure parts: User-Agent parsing, the password policy, slot arithmetic."""

from __future__ import annotations

from datetime import date, time

import pytest

from qtraq_live.accounts import passwords, useragent
from qtraq_live.accounts.appointments import local_ms, slot_times
from qtraq_live.accounts.records import age_on, patient_age
from qtraq_live.errors import Invalid


@pytest.mark.parametrize(("ua", "os_name", "browser"), [
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 "
     "Mobile Safari/537.36", "Android 14", "Chrome 120"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.2 Mobile/15E148 Safari/604.1", "iOS 17", "Safari 17"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
     "Safari/537.36 Edg/120.0.2210.91", "Windows 10/11", "Edge 120"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Linux", "Firefox 121"),
    ("Mozilla/5.0 (Linux; Android 13; SM-A536E) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 "
     "Chrome/115.0.0.0 Mobile Safari/537.36", "Android 13", "Samsung Internet 23"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
     "Safari/537.36 OPR/105.0.0.0", "Windows 10/11", "Opera 105"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
     "Safari/605.1.15", "macOS 10", "Safari 17"),
    ("curl/8.5.0", "Unknown", "curl 8"),
    ("", "Unknown", "Unknown"),
    (None, "Unknown", "Unknown"),
])
def test_user_agents(ua: str | None, os_name: str, browser: str) -> None:
    assert useragent.parse(ua) == (os_name, browser)


@pytest.mark.parametrize("password", ["short", "1234567890", "Password123", "qwertyuiop", "x" * 129])
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(Invalid) as err:
        passwords.check_policy(password)
    assert err.value.field == "password"


def test_a_good_password_hashes_with_argon2_and_verifies() -> None:
    passwords.check_policy("a long unusual passphrase")
    hashed = passwords.hash_password("a long unusual passphrase")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "a long unusual passphrase")
    assert not passwords.verify_password(hashed, "another one entirely")
    assert not passwords.verify_password(None, "a long unusual passphrase")
    assert not passwords.verify_password("not a hash", "x")


def test_slots_fit_between_opening_and_closing() -> None:
    cfg = {"slot_minutes": 45, "opens": "09:00", "closes": "12:00"}
    assert slot_times(cfg) == ["09:00", "09:45", "10:30", "11:15"]  # the last one ends at closing
    assert slot_times({**cfg, "slot_minutes": 180}) == ["09:00"]


def test_local_slot_times_follow_the_clinic_timezone() -> None:
    kolkata = local_ms(date(2026, 3, 2), time(9, 30), "Asia/Kolkata")
    utc = local_ms(date(2026, 3, 2), time(4, 0), "UTC")
    assert kolkata == utc


def test_ages_grow_from_when_they_were_given() -> None:
    assert age_on(date(2000, 3, 2), date(2026, 3, 1)) == 25
    assert age_on(date(2000, 3, 2), date(2026, 3, 2)) == 26
    assert patient_age({"date_of_birth": None, "age": 7, "age_recorded_on": "2024-01-01"}, date(2026, 3, 1)) == 9
