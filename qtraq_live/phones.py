"""Phone numbers as people type them, read the way their country writes them.

``98765 43210``, ``09876543210`` and ``+91 98765-43210`` are one Indian mobile number: each is
parsed with the ``phonenumbers`` library in the region of the clinic (clinic field ``region``,
ISO 3166 alpha-2, default ``IN``) and stored as E.164 (``+919876543210``). A number that is not
a valid one of that region (or, with a ``+``, of its own country) is refused with an error that
shows what a right one looks like, in the region's own ways of writing it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from .errors import Invalid
from .validation import Field

DEFAULT_REGION = "IN"
# What a typed number may hold before parsing: digits, a leading +, spaces, dots, dashes, brackets.
TYPED = re.compile(r"^[(]?\+?[0-9 ().\-]{6,24}$")
TYPED_MAX = 32
REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
# The body field of a phone number as typed; the handler turns it into E.164 with the region.
FIELD = Field("string", nullable=True, max_length=TYPED_MAX,
              description="as written locally (98765 43210, 09876543210) or with its country code "
                          "(+91 98765-43210); read in the clinic's region and stored as E.164")


def check_region(region: object) -> str:
    """A region code we can read numbers in (``IN``, ``NP``…), else :class:`Invalid`."""
    if not isinstance(region, str) or region.upper() not in REGIONS or region != region.upper():
        raise Invalid("region", "must be an ISO 3166 country code in capitals, such as IN")
    return region


@lru_cache(maxsize=64)
def example(region: str) -> str:
    """``98765 43210 or +91 98765 43210``: a right number, as people of ``region`` write it."""
    number = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if number is None:
        return "+91 98765 43210"
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    local = international.split(" ", 1)[1]  # as dialled at home, without the trunk prefix
    return f"{local} or {international}"


def to_e164(value: str, region: str = DEFAULT_REGION, field: str = "mobile") -> str:
    """The E.164 form of a typed number, or :class:`Invalid` naming ``field`` and showing an example."""
    wrong = Invalid(field, f"must be a phone number such as {example(region)}")
    if not isinstance(value, str) or not TYPED.fullmatch(value.strip()):
        raise wrong
    try:
        number = phonenumbers.parse(value.strip(), region)
    except NumberParseException:
        raise wrong from None
    if not phonenumbers.is_valid_number(number):
        raise wrong
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def optional_e164(value: str | None, region: str = DEFAULT_REGION, field: str = "mobile") -> str | None:
    """:func:`to_e164` for a field that may be absent (``None`` or blank stays ``None``)."""
    if value is None or not value.strip():
        return None
    return to_e164(value, region, field)
