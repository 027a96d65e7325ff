"""JSON values from outside: what ECL accepts, and how it serves back what is already stored.

A value is accepted when every database can store it and every reader can serve it back:

- numbers are finite (no ``NaN``/``Infinity``: stored as ``null`` by some layers but hashed as
  ``NaN`` by others) and integers fit in 64 bits;
- strings are valid Unicode without lone surrogates (``"\\ud800"`` cannot be encoded as UTF-8)
  and without NUL (PostgreSQL's JSONB refuses ``\\u0000``), and are at most
  ``max_string_chars`` long; object keys follow the same rules;
- nesting is at most ``max_depth`` deep (serializers give up a few hundred levels down).

:func:`parse_json` parses untrusted bytes and :func:`check_json` checks a value built some
other way (CLI options); both raise :class:`~ecl.core.errors.InputValidationError` naming the
field (``input.items.3.name``) and a printable form of the value. :func:`servable` repairs a
value that was stored before these rules existed, so that one bad row never breaks a list.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from json import encoder as _json_encoder
from typing import Any

from ecl.core.errors import FieldError, InputValidationError

__all__ = ["READ_DEPTH", "JsonLimits", "check_json", "dumps", "load_stored", "parse_json", "servable"]

READ_DEPTH = 64
"""Deeper parts of a stored value are replaced by a marker when it is read (pydantic's
serializer stops at about 250 levels, including the envelope around the value)."""

_INT_MAX = 2**63 - 1
_INT_DIGITS = 19
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_REPORTED = 10


@dataclass(frozen=True)
class JsonLimits:
    """Bounds on untrusted JSON."""

    max_depth: int = 32
    """Deepest nesting of objects and arrays (the top-level value is depth 1)."""
    max_string_chars: int = 256 * 1024
    """Longest string or object key."""


class _HugeInt:
    """An integer literal too long to convert (Python refuses past 4,300 digits, slowly)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | _HugeInt:
    if len(text.lstrip("-")) > _INT_DIGITS:
        return _HugeInt(text)
    return int(text)


def _shown(value: Any) -> str:
    """A printable, ASCII-only and short form of a bad value (it may hold a surrogate or NUL)."""
    shown = value.text if isinstance(value, _HugeInt) else ascii(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _join(path: str, part: str | int) -> str:
    if isinstance(part, str) and not (part.isprintable() and len(part) <= 64):
        part = ascii(part[:60])  # a field name stays short and printable in an error line
    return f"{path}.{part}" if path else str(part)


def _string_problem(text: str, limits: JsonLimits) -> str | None:
    if len(text) > limits.max_string_chars:
        return f"string longer than {limits.max_string_chars} characters"
    if "\x00" in text:
        return "NUL character (\\u0000) not allowed"
    if _SURROGATE.search(text):
        return "lone UTF-16 surrogate: not valid Unicode"
    return None


def _problems(value: Any, limits: JsonLimits, field: str) -> list[FieldError]:
    """Every rule the value breaks (at most a few), walking without recursion."""
    found: list[FieldError] = []
    stack: list[tuple[str, Any, int]] = [(field, value, 1)]
    while stack and len(found) < _MAX_REPORTED:
        path, item, depth = stack.pop()
        name = path or "(body)"
        if isinstance(item, dict | list | tuple):
            if depth > limits.max_depth:
                found.append({"field": name, "message": f"nested deeper than {limits.max_depth} levels"})
                continue
            if isinstance(item, dict):
                children: list[tuple[str, Any, int]] = []
                for key, child in item.items():
                    if not isinstance(key, str):
                        found.append({"field": name, "message": "object key is not a string", "value": _shown(key)})
                        continue
                    key_problem = _string_problem(key, limits)
                    if key_problem is not None:
                        found.append({"field": name, "message": f"object key: {key_problem}", "value": _shown(key)})
                        continue
                    children.append((_join(path, key), child, depth + 1))
                stack.extend(reversed(children))  # popped in document order
            else:
                stack.extend((_join(path, i), item[i], depth + 1) for i in range(len(item) - 1, -1, -1))
            continue
        problem: str | None = None
        if isinstance(item, str):
            problem = _string_problem(item, limits)
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            if not -_INT_MAX - 1 <= item <= _INT_MAX:
                problem = "integer outside the 64-bit range"
        elif isinstance(item, _HugeInt):
            problem = "integer outside the 64-bit range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = "NaN and Infinity are not JSON numbers"
        else:
            problem = f"not a JSON value ({type(item).__name__})"
        if problem is not None:
            found.append({"field": name, "message": problem, "value": _shown(item)})
    return found


def _raise(errors: list[FieldError]) -> None:
    first = errors[0]
    shown = f" = {first['value']}" if "value" in first else ""
    raise InputValidationError(f"{first['field']}{shown}: {first['message']}", errors=errors)


def check_json(value: Any, limits: JsonLimits | None = None, *, field: str = "") -> None:
    """Raise :class:`InputValidationError` unless ``value`` is an acceptable JSON value."""
    errors = _problems(value, limits or JsonLimits(), field)
    if errors:
        _raise(errors)


def parse_json(
    data: bytes | str, limits: JsonLimits | None = None, *, field: str = "", source: str = "request body"
) -> Any:
    """Parse untrusted JSON text and check it (see the module docstring). Errors name the field
    as a dotted path below ``field``; ``source`` names the document in errors about all of it
    (not UTF-8, not JSON, nested too deep for the parser)."""
    where = field or "(body)"
    try:
        # NaN/Infinity literals and 1e999 parse to non-finite floats, and long integer literals
        # to a marker, so that the walk below can name the field that holds them.
        value = json.loads(data, parse_constant=float, parse_int=_parse_int)
    except UnicodeDecodeError as exc:
        problem = f"not valid UTF-8 (byte {exc.start})"
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        problem = f"nested deeper than {(limits or JsonLimits()).max_depth} levels"
    else:
        check_json(value, limits, field=field)
        return value
    raise InputValidationError(f"{source} is {problem}", errors=[{"field": where, "message": problem}])


# ------------------------------------------------------------------ reading stored values


def _servable_string(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if _SURROGATE.search(text):
        # A surrogate pair stored as two code points becomes the one character it encodes; a
        # lone one becomes U+FFFD.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _needs_repair(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > READ_DEPTH:
                return True
            for key, child in item.items():
                if isinstance(key, str) and ("\x00" in key or _SURROGATE.search(key)):
                    return True
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > READ_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if "\x00" in item or _SURROGATE.search(item):
                return True
        elif isinstance(item, float) and not math.isfinite(item):
            return True
    return False


def _repaired(item: Any, depth: int) -> Any:
    if isinstance(item, dict | list) and depth > READ_DEPTH:
        return f"(nested deeper than {READ_DEPTH} levels: not shown)"
    if isinstance(item, dict):
        return {(_servable_string(k) if isinstance(k, str) else k): _repaired(v, depth + 1) for k, v in item.items()}
    if isinstance(item, list):
        return [_repaired(v, depth + 1) for v in item]
    if isinstance(item, str):
        return _servable_string(item)
    if isinstance(item, float) and not math.isfinite(item):
        return None
    return item


def servable(value: Any) -> Any:
    """``value`` itself when every reader can serve it, else a repaired copy: lone surrogates
    and NUL become U+FFFD, ``NaN``/``Infinity`` become ``null``, parts nested deeper than
    :data:`READ_DEPTH` become a marker string."""
    if not _needs_repair(value):
        return value
    return _repaired(value, 1)


def load_stored(text: str | bytes) -> Any:
    """Decode a JSON column as stored; a value no decoder can read (nested past the recursion
    limit) comes back as a marker instead of failing every query that touches its row."""
    try:
        return json.loads(text)
    except RecursionError:
        return "(stored value nested too deeply to read: not shown)"


_DEFAULT = json.JSONEncoder()
"""An encoder with ``json.dumps``'s default settings (its ``default`` raises ``TypeError``)."""
_C_ENCODER: Any = getattr(_json_encoder, "c_make_encoder", None)  # (not in the module's stubs)
_ASCII = _json_encoder.encode_basestring_ascii


def dumps(value: Any) -> str:
    """``json.dumps(value)``: the same text (and the same errors), without the Python layers
    ``json.dumps`` goes through on every call (``encode`` and ``iterencode``), which cost more
    than encoding a small value. ECL encodes a few values per durable step this way: its
    journal entry and its step_executions row's input and output.

    The C encoder is made with the arguments ``JSONEncoder.iterencode`` gives it (a fresh
    dict for its circular-reference check each time, so concurrent calls share nothing)."""
    if _C_ENCODER is None:  # no C accelerator (not CPython)
        return json.dumps(value)
    if isinstance(value, str):
        return _ASCII(value)
    encode = _C_ENCODER({}, _DEFAULT.default, _ASCII, None, ": ", ", ", False, False, True)
    return "".join(encode(value, 0))
