"""A small, safe expression language for workflow conditions (never ``eval``).

Grammar (keywords are lower case)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := primary (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") primary)?
    primary    := NUMBER | STRING | "true" | "false" | "null" | REFERENCE
                | "(" expr ")" | "[" (expr ("," expr)*)? "]"
    NUMBER     := "-"? DIGITS ("." DIGITS)? (("e" | "E") ("+" | "-")? DIGITS)?
    STRING     := '...' | "..."          (a backslash escapes the next character)
    REFERENCE  := NAME ("." NAME)*       e.g. steps.critique.decision, input.topic

Semantics: a reference to something missing is ``null``; ``and``/``or``/``not`` use
truthiness and short-circuit; ``==``/``!=`` compare values of the same type (int and
float count as one type, bools are not numbers), so ``1 == "1"`` is false; ``<`` and
friends between different types (or with ``null``) are an evaluation error; ``x in y``
tests list membership, substring or mapping key, and is false for anything else.

Parse errors are :class:`ExpressionError` naming the 0-based character position.
Expressions are limited to 2,000 characters and 50 levels of nesting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecl.core.errors import InputValidationError

__all__ = ["Expression", "ExpressionError", "parse_expression", "resolve_reference", "unparse"]

MAX_LENGTH = 2000
MAX_DEPTH = 50


class ExpressionError(InputValidationError):
    """A condition that does not parse or cannot be evaluated."""


def _fail(text: str, message: str, pos: int | None = None) -> ExpressionError:
    where = f" at position {pos}" if pos is not None else ""
    return ExpressionError(
        f"condition {text!r}: {message}{where}",
        errors=[{"field": "condition", "message": f"{message}{where}", "value": text}],
    )


@dataclass(frozen=True)
class _Tok:
    kind: str  # number | string | op | name | kw | end
    value: str
    pos: int


_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_TWO_CHAR_OPS = ("==", "!=", "<=", ">=")
_ONE_CHAR_OPS = "<>()[],"


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _is_name_char(ch: str) -> bool:
    return _is_name_start(ch) or _is_digit(ch) or ch == "-"


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos, n = 0, len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        start = pos
        if _is_digit(ch) or (ch == "-" and pos + 1 < n and _is_digit(text[pos + 1])):
            pos += 1
            while pos < n and _is_digit(text[pos]):
                pos += 1
            if pos + 1 < n and text[pos] == "." and _is_digit(text[pos + 1]):
                pos += 1
                while pos < n and _is_digit(text[pos]):
                    pos += 1
            if pos < n and text[pos] in "eE":
                exp = pos + 1
                if exp < n and text[exp] in "+-":
                    exp += 1
                if exp < n and _is_digit(text[exp]):
                    pos = exp
                    while pos < n and _is_digit(text[pos]):
                        pos += 1
            tokens.append(_Tok("number", text[start:pos], start))
        elif ch in "'\"":
            quote, pos, chars = ch, pos + 1, []
            while True:
                if pos >= n:
                    raise _fail(text, "unterminated string starting", start)
                if text[pos] == "\\" and pos + 1 < n:
                    chars.append(text[pos + 1])
                    pos += 2
                elif text[pos] == quote:
                    pos += 1
                    break
                else:
                    chars.append(text[pos])
                    pos += 1
            tokens.append(_Tok("string", "".join(chars), start))
        elif text.startswith(_TWO_CHAR_OPS, pos):
            tokens.append(_Tok("op", text[pos : pos + 2], start))
            pos += 2
        elif ch in _ONE_CHAR_OPS:
            tokens.append(_Tok("op", ch, start))
            pos += 1
        elif _is_name_start(ch):
            while True:
                while pos < n and _is_name_char(text[pos]):
                    pos += 1
                if pos + 1 < n and text[pos] == "." and _is_name_char(text[pos + 1]):
                    pos += 1
                    continue
                break
            word = text[start:pos]
            tokens.append(_Tok("kw" if word in _KEYWORDS else "name", word, start))
        else:
            raise _fail(text, f"unexpected character {ch!r}", pos)
    tokens.append(_Tok("end", "", n))
    return tokens


Node = tuple[Any, ...]
"""A syntax tree node: ``("lit", v)``, ``("ref", "a.b")``, ``("list", [nodes])``,
``("not", n)``, ``("and", l, r)``, ``("or", l, r)``, ``("cmp", op, l, r)``."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> _Tok:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, message: str) -> ExpressionError:
        return _fail(self.text, message, self.peek().pos)

    def accept(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        if tok.kind == kind and (value is None or tok.value == value):
            self.i += 1
            return True
        return False

    def describe(self, tok: _Tok) -> str:
        return "end of input" if tok.kind == "end" else repr(tok.value)

    def parse(self) -> Node:
        node = self.or_()
        if self.peek().kind != "end":
            raise self.fail(f"unexpected {self.describe(self.peek())}")
        return node

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")

    def or_(self) -> Node:
        node = self.and_()
        while self.accept("kw", "or"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.accept("kw", "and"):
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.peek().kind == "kw" and self.peek().value == "not" and self.peek(1).value != "in":
            self.take()
            self.nested()
            node = ("not", self.not_())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.primary()
        tok = self.peek()
        if tok.kind == "op" and tok.value in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return ("cmp", tok.value, left, self.primary())
        if tok.kind == "kw" and tok.value == "in":
            self.take()
            return ("cmp", "in", left, self.primary())
        if tok.kind == "kw" and tok.value == "not" and self.peek(1).kind == "kw" and self.peek(1).value == "in":
            self.i += 2
            return ("not", ("cmp", "in", left, self.primary()))
        return left

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "number":
            self.take()
            is_float = any(c in tok.value for c in ".eE")
            return ("lit", float(tok.value) if is_float else int(tok.value))
        if tok.kind == "string":
            self.take()
            return ("lit", tok.value)
        if tok.kind == "kw" and tok.value in ("true", "false", "null"):
            self.take()
            return ("lit", {"true": True, "false": False, "null": None}[tok.value])
        if tok.kind == "name":
            self.take()
            return ("ref", tok.value)
        if tok.kind == "op" and tok.value == "(":
            self.take()
            self.nested()
            node = self.or_()
            if not self.accept("op", ")"):
                raise self.fail(f"expected ')' but found {self.describe(self.peek())}")
            self.depth -= 1
            return node
        if tok.kind == "op" and tok.value == "[":
            self.take()
            self.nested()
            items: list[Node] = []
            if not self.accept("op", "]"):
                items.append(self.or_())
                while self.accept("op", ","):
                    items.append(self.or_())
                if not self.accept("op", "]"):
                    raise self.fail(f"expected ']' but found {self.describe(self.peek())}")
            self.depth -= 1
            return ("list", items)
        raise self.fail(f"expected a value but found {self.describe(tok)}")


def resolve_reference(scope: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path through nested mappings; missing parts give ``None``."""
    node: Any = scope
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return node


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unparse(node: Node) -> str:
    """Text that parses back to ``node`` (fully parenthesised)."""
    op = node[0]
    if op == "lit":
        value = node[1]
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return _quote(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} has no literal form")
        return repr(value)
    if op == "ref":
        return str(node[1])
    if op == "list":
        return "[" + ", ".join(unparse(item) for item in node[1]) + "]"
    if op == "not":
        return f"(not {unparse(node[1])})"
    if op in ("and", "or"):
        return f"({unparse(node[1])} {op} {unparse(node[2])})"
    if op == "cmp":
        return f"({unparse(node[2])} {node[1]} {unparse(node[3])})"
    raise ValueError(f"not an expression node: {node!r}")


@dataclass(frozen=True)
class Expression:
    """A parsed condition."""

    text: str
    tree: Node

    @property
    def references(self) -> list[str]:
        """Every dotted reference the expression reads, in order."""
        found: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, tuple) and node:
                if node[0] == "ref":
                    found.append(node[1])
                    return
                if node[0] == "lit":
                    return
                for child in node[1:]:
                    walk(child)
            elif isinstance(node, list):
                for child in node:
                    walk(child)

        walk(self.tree)
        return found

    def evaluate(self, scope: Mapping[str, Any]) -> bool:
        """Evaluate to a boolean; raises :class:`ExpressionError` for incomparable values."""
        return bool(self.value(scope))

    def value(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate to a value (not coerced to bool)."""
        return self._eval(self.tree, scope)

    def _eval(self, node: Node, scope: Mapping[str, Any]) -> Any:
        op = node[0]
        if op == "lit":
            return node[1]
        if op == "ref":
            return resolve_reference(scope, node[1])
        if op == "list":
            return [self._eval(item, scope) for item in node[1]]
        if op == "not":
            return not self._eval(node[1], scope)
        if op == "and":
            return bool(self._eval(node[1], scope)) and bool(self._eval(node[2], scope))
        if op == "or":
            return bool(self._eval(node[1], scope)) or bool(self._eval(node[2], scope))
        if op == "cmp":
            return self._compare(node[1], self._eval(node[2], scope), self._eval(node[3], scope))
        raise _fail(self.text, f"bad node {op!r}")

    def _compare(self, op: str, left: Any, right: Any) -> bool:
        if op == "in":
            if isinstance(right, str):
                return isinstance(left, str) and left in right
            if isinstance(right, list):
                return any(_equal(left, item) for item in right)
            if isinstance(right, Mapping):
                return isinstance(left, str) and left in right
            return False
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        if not _same_type(left, right) or left is None or not isinstance(left, int | float | str):
            raise _fail(self.text, f"cannot compare {_kind(left)} {op} {_kind(right)}")
        result: bool = {
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[op]
        return result


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list"}.get(type(value), "mapping")


def _same_type(left: Any, right: Any) -> bool:
    numeric = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(left, numeric) and isinstance(right, numeric):
        return True
    return type(left) is type(right)


def _equal(left: Any, right: Any) -> bool:
    return _same_type(left, right) and bool(left == right)


def parse_expression(text: str) -> Expression:
    """Parse a condition; raises :class:`ExpressionError` naming the position."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("condition is empty", errors=[{"field": "condition", "message": "empty", "value": text}])
    if len(text) > MAX_LENGTH:
        raise _fail(text[:40] + "...", f"longer than {MAX_LENGTH} characters")
    return Expression(text, _Parser(text).parse())
