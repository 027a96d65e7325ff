"""The embedded writer's JSON binds on SQLite make SQLAlchemy's own text."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import JSON
from sqlalchemy.dialects import sqlite

from ecl.engines.embedded.writer import EncodedJson, _json_bind

VALUES: list[Any] = [
    None,
    {},
    [],
    {"result": 1},
    [{"a": [1, 2.5, None, True]}, "é", float("nan")],
    {"k": '\u2028 "quoted" \\', "n": {"deep": [[], {}]}},
    "text",
    3,
    JSON.NULL,
]


@pytest.mark.parametrize("value", VALUES)
def test_json_binds_make_sqlalchemys_text(value: Any) -> None:
    """Inserts' and updates' binds (:func:`_json_bind`): same text."""
    proc = JSON().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert proc is not None
    expected = proc(value)
    assert _json_bind(proc, stores_text=True)(value) == expected
    assert _json_bind(proc, stores_text=True)(EncodedJson(value, "as made")) == "as made"


def test_json_binds_fail_as_sqlalchemy() -> None:
    """A value that is not JSON fails with SQLAlchemy's error (json.dumps's)."""
    proc = JSON().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert proc is not None
    with pytest.raises(TypeError) as expected:
        proc({"at": object()})
    bind = _json_bind(proc, stores_text=True)
    with pytest.raises(TypeError) as found:
        bind({"at": object()})
    assert str(found.value).split(" at ")[0] == str(expected.value).split(" at ")[0]


def test_binds_keep_a_serializer_of_their_own() -> None:
    """A processor whose text differs (a serializer of the dialect's own) encodes every value."""
    compact = sqlite.dialect(json_serializer=lambda v: "custom")
    proc = JSON().bind_processor(compact)  # type: ignore[no-untyped-call]
    assert proc is not None
    assert _json_bind(proc, stores_text=True)({"a": 1}) == "custom"
