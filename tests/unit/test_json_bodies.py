"""schemas.parse_json: orjson decodes, the stdlib decides what orjson would not keep or read,
and both give the same values and the same refusals."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, strategies as st

from paddles.db import load_json
from paddles.errors import InvalidRequest
from paddles.jsontext import may_hold_long_integer
from paddles.schemas.common import BAD_JSON, MAX_JSON_DEPTH, _has_nul, parse_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(JSON_VALUES)
def test_any_json_value_decodes_exactly_as_the_stdlib_does(value):
    raw = json.dumps(value).encode()
    assert parse_json(raw) == json.loads(raw)


@pytest.mark.parametrize("raw, expected", [
    (b"9223372036854775807", 2**63 - 1),
    (b"18446744073709551615", 2**64 - 1),
    (b"18446744073709551616", 2**64),           # orjson would make it a float
    (b"[-1208925819614629174706176]", [-2**80]),
    ('{"a": "\u00e9"}'.encode("utf-16"), {"a": "\u00e9"}),  # UTF-16: the stdlib reads it
    (b'{"a": 1, "a": 2}', {"a": 2}),
    (b'"\\ud83d\\ude00"', "\U0001F600"),          # a surrogate pair is one character
])
def test_values_orjson_alone_would_get_wrong_or_refuse(raw, expected):
    value = parse_json(raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b"1e400", b'"\\ud800"', b'"\xff"',
                                 b"{", b"[1,]"])
def test_refused_either_way(raw):
    with pytest.raises(InvalidRequest) as caught:
        parse_json(raw)
    assert caught.value.message == BAD_JSON


def _walked_has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_walked_has_nul(k) or _walked_has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_walked_has_nul(item) for item in value)
    return False


NUL_ISH = st.sampled_from(["\x00", "a\\u0000", "\\\x00", "\\"])


@given(JSON_VALUES | st.recursive(NUL_ISH, lambda inner: st.lists(inner, max_size=3)
                                  | st.dictionaries(st.text(max_size=3) | NUL_ISH, inner,
                                                    max_size=3), max_leaves=6))
def test_nul_found_wherever_it_hides(value):
    assert _has_nul(value) is _walked_has_nul(value)


@pytest.mark.parametrize("value, nul", [
    ({"a": "\\u0000"}, False),               # a backslash, then u0000: no NUL
    ({"\x00": 1}, True), ([[["x\x00"]]], True),
    ({"big": 2**70, "s": "\x00"}, True),     # orjson cannot encode it: walked
    ({"big": 2**70, "s": "ok"}, False),
])
def test_nul_cases(value, nul):
    assert _has_nul(value) is nul


@pytest.mark.parametrize("encode", [
    lambda text: text.encode(),
    lambda text: text.encode("utf-16"),                       # the stdlib's path
    lambda text: text.replace("1", "12345678901234567890").encode(),  # a long integer: too
])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a": ', "}")])
def test_nesting_is_bounded(encode, opener, closer):
    def nested(depth):
        return encode(opener * depth + "1" + closer * depth)
    assert parse_json(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(InvalidRequest) as caught:
        parse_json(nested(MAX_JSON_DEPTH + 1))
    assert caught.value.message == f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels"


@given(st.text(alphabet=st.sampled_from("0123456789 a,-.é\"[]{}"), max_size=80))
def test_long_integers_are_found_as_re_finds_19_digits(text):
    """jsontext.may_hold_long_integer (the request parser's and the JSON columns' check)
    agrees with a regular expression for 19 digits in a row, on text and on bytes."""
    expected = re.search(r"[0-9]{19}", text) is not None
    assert may_hold_long_integer(text) is expected
    assert may_hold_long_integer(text.encode()) is expected


@pytest.mark.parametrize("value", [12345678901234567890123, -2**64, 2**63 - 1, 1.5, "1" * 30])
def test_a_json_column_reads_back_exactly(value):
    assert load_json(json.dumps({"v": value})) == {"v": value}
    assert load_json(json.dumps([value]).encode()) == [value]
