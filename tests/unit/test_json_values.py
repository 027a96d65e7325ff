"""What ECL accepts as JSON from outside, and how a bad stored value is served back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecl.core.errors import InputValidationError
from ecl.core.json_values import READ_DEPTH, JsonLimits, check_json, dumps, load_stored, parse_json, servable


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (b'{"input": {"topic": "\\ud800"}}', "input.topic", "lone UTF-16 surrogate"),
        (b'{"a": {"\\udc00": 1}}', "a", "object key: lone UTF-16 surrogate"),
        (b'{"a": [1, NaN]}', "a.1", "NaN and Infinity"),
        (b'{"a": -Infinity}', "a", "NaN and Infinity"),
        (b'{"a": 1e999}', "a", "NaN and Infinity"),
        (b'{"a": 9223372036854775808}', "a", "64-bit"),
        (b'{"a": ' + b"9" * 5000 + b"}", "a", "64-bit"),
        (b'{"a": "x\\u0000"}', "a", "NUL"),
        (b'"\\u0000"', "(body)", "NUL"),
        (b'{"a": "\xff"}', "(body)", "not valid UTF-8 (byte 7)"),
        (b"{a}", "(body)", "not valid JSON"),
        (b"[" * 100_000, "(body)", "nested deeper than 32 levels"),
        (json.dumps({"a": "x" * 300}).encode(), "a", "longer than 200"),
    ],
)
def test_refused_with_the_field_named(text: bytes, field: str, message: str) -> None:
    with pytest.raises(InputValidationError) as caught:
        parse_json(text, JsonLimits(max_string_chars=200))
    first = caught.value.errors[0]
    assert first["field"] == field
    assert message in first["message"]
    assert "\n" not in caught.value.message
    json.dumps(caught.value.errors).encode()  # the error itself is servable (no surrogate in it)


def test_depth_is_counted_from_the_document() -> None:
    limits = JsonLimits(max_depth=3)
    assert parse_json(b'{"a": {"b": [1]}}', limits) == {"a": {"b": [1]}}
    with pytest.raises(InputValidationError) as caught:
        parse_json(b'{"a": {"b": [[1]]}}', limits)
    assert caught.value.errors[0]["field"] == "a.b.0"


def test_accepted_values_come_back_unchanged() -> None:
    value = {"topic": "Ünïcode ✓ 😀", "n": [1, -2.5, 2**63 - 1, -(2**63)], "ok": True, "none": None}
    assert parse_json(json.dumps(value)) == value
    check_json(value, field="input")


def test_check_json_names_the_field_below_a_prefix() -> None:
    with pytest.raises(InputValidationError) as caught:
        check_json({"topic": "caf\udce9"}, field="input")
    assert caught.value.errors[0]["field"] == "input.topic"
    assert caught.value.message == "input.topic = 'caf\\udce9': lone UTF-16 surrogate: not valid Unicode"
    with pytest.raises(InputValidationError):
        check_json({"when": object()})


def test_a_long_key_is_shortened_in_the_field_name() -> None:
    with pytest.raises(InputValidationError) as caught:
        parse_json(json.dumps({"k" * 10_000: float("nan")}))
    assert len(caught.value.errors[0]["field"]) < 80


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    return depth


def test_servable_repairs_what_no_reader_could_serve() -> None:
    good = {"a": ["x", 1.5, {"b": None}]}
    assert servable(good) is good  # nothing to repair: no copy
    assert servable({"s": "\ud800", "pair": "\ud83d\ude00", "n": float("nan"), "z": "a\x00"}) == {
        "s": "\ufffd",
        "pair": "😀",
        "n": None,
        "z": "a\ufffd",
    }
    deep: Any = 1
    for _ in range(600):
        deep = [deep]
    repaired = servable(deep)
    assert _depth(repaired) == READ_DEPTH
    json.dumps(repaired).encode()


def test_load_stored_survives_nesting_past_the_recursion_limit() -> None:
    assert load_stored('{"a": [1]}') == {"a": [1]}
    assert "too deeply" in load_stored("[" * 100_000 + "]" * 100_000)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_dumps_is_json_dumps(value: Any) -> None:
    # The text of journal entries and step rows: exactly what json.dumps (SQLAlchemy's
    # serializer) makes, NaN and non-ASCII included.
    assert dumps(value) == json.dumps(value)


def test_dumps_fails_as_json_dumps_does() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    for bad in ({"a": object()}, {(1, 2): 3}, circular):
        with pytest.raises((TypeError, ValueError)) as expected:
            json.dumps(bad)
        with pytest.raises(type(expected.value), match=str(expected.value)):
            dumps(bad)
    # A failure leaves nothing behind: the same dict encodes once it is fixed.
    circular["self"] = 1
    assert dumps(circular) == '{"self": 1}'
