"""The condition language: parsing, evaluation, errors with positions, never eval."""

from __future__ import annotations

import contextlib
import operator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecl.workflows import ExpressionError, parse_expression, unparse
from ecl.workflows.expression import MAX_DEPTH, Node

SCOPE = {
    "steps": {"critique": {"decision": "pass", "score": 7, "ratio": 0.5, "tags": ["a", "b"]}},
    "input": {"topic": "Rust", "flag": True, "nothing": None, "meta": {"k": 1}},
    "state": {"revision_count": 2},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps.critique.decision == 'pass'", True),
        ('steps.critique.decision != "pass"', False),
        ("steps.critique.score >= 5 and not input.missing", True),
        ("steps.critique.score > 7 or state.revision_count < 3", True),
        ("'a' in steps.critique.tags", True),
        ("'z' not in steps.critique.tags", True),
        ("'us' in input.topic", True),
        ("'k' in input.meta", True),
        ("1 in input.topic", False),
        ("input.nothing == null", True),
        ("input.missing.deeper == null", True),
        ("input.flag == true and not false", True),
        ("steps.critique.ratio == 0.5 and steps.critique.ratio < 1", True),
        ("steps.critique.score == 7.0", True),
        ("1 == '1'", False),
        ("true == 1", False),
        ("input.flag != 1", True),
        ("[1, 2] == [1, 2]", True),
        ("state.revision_count in [1, 2, 3]", True),
        ("not (1 < 2 and 2 < 1)", True),
        ("not not input.flag", True),
        ("'it\\'s' == \"it's\"", True),
        ("-1 < 0 and 1.5e1 == 15", True),
        ("steps.critique.tags", True),
        ("[]", False),
    ],
)
def test_evaluation(text: str, expected: bool) -> None:
    assert parse_expression(text).evaluate(SCOPE) is expected


def test_precedence_not_binds_looser_than_comparison_and_and_tighter_than_or() -> None:
    assert parse_expression("not 1 == 2").tree == ("not", ("cmp", "==", ("lit", 1), ("lit", 2)))
    assert parse_expression("a or b and c").tree == ("or", ("ref", "a"), ("and", ("ref", "b"), ("ref", "c")))
    assert parse_expression("a and b or c").tree == ("or", ("and", ("ref", "a"), ("ref", "b")), ("ref", "c"))


def test_references_are_listed() -> None:
    expr = parse_expression("steps.critique.decision == 'x' and input.topic in [state.k, 'y']")
    assert expr.references == ["steps.critique.decision", "input.topic", "state.k"]


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("a ==", 4, "expected a value"),
        ("(a", 2, "expected ')'"),
        ("a = 1", 2, "unexpected character '='"),
        ("'abc", 0, "unterminated string"),
        ("a.b(1)", 3, "unexpected '('"),
        ("1 2", 2, "unexpected '2'"),
        ("[1, 2", 5, "expected ']'"),
        ("a < b < c", 6, "unexpected '<'"),
        ("a not b", 2, "unexpected 'not'"),
        ("__import__('os').system('x')", 16, "unexpected character '.'"),
        ("__import__('os')", 10, "unexpected '('"),
        ("a; b", 1, "unexpected character ';'"),
        ("a + 1", 2, "unexpected character '+'"),
    ],
)
def test_parse_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert f"at position {position}" in info.value.message
    assert fragment in info.value.message
    assert info.value.errors[0]["field"] == "condition"


def test_empty_long_and_deep_expressions_are_rejected() -> None:
    with pytest.raises(ExpressionError, match="empty"):
        parse_expression("  ")
    with pytest.raises(ExpressionError, match="longer than"):
        parse_expression("a or " * 500 + "a")
    with pytest.raises(ExpressionError, match="nested more than"):
        parse_expression("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ExpressionError, match="nested more than"):
        parse_expression("not " * (MAX_DEPTH + 1) + "a")
    assert parse_expression("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH).evaluate({})


def test_ordering_different_types_is_an_evaluation_error() -> None:
    with pytest.raises(ExpressionError, match="cannot compare null < number"):
        parse_expression("input.nothing < 1").evaluate(SCOPE)
    with pytest.raises(ExpressionError, match="cannot compare string > number"):
        parse_expression("input.topic > 1").evaluate(SCOPE)
    with pytest.raises(ExpressionError, match="cannot compare list < list"):
        parse_expression("[1] < [2]").evaluate(SCOPE)


def test_and_or_short_circuit() -> None:
    # The right side would be an evaluation error if it were evaluated.
    assert not parse_expression("false and input.nothing < 1").evaluate(SCOPE)
    assert parse_expression("true or input.nothing < 1").evaluate(SCOPE)


def test_no_python_is_ever_evaluated() -> None:
    """Attribute access and dunder names are plain references that resolve to null."""
    scope: dict[str, Any] = {"input": {"topic": "x"}}
    assert parse_expression("input.topic.__class__ == null").evaluate(scope)
    assert parse_expression("input.__dict__ == null").evaluate(scope)


# ---------------------------------------------------------------- properties

_names = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda s: s not in {"and", "or", "not", "in", "true", "false", "null"}
)
_refs = st.lists(_names, min_size=1, max_size=3).map(lambda parts: ("ref", ".".join(parts)))
_literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=8),
).map(lambda v: ("lit", v))


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.tuples(st.just("not"), children),
        st.tuples(st.sampled_from(["and", "or"]), children, children),
        st.tuples(st.just("cmp"), st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in"]), children, children),
        st.lists(children, max_size=3).map(lambda items: ("list", items)),
    )


trees = st.recursive(st.one_of(_literals, _refs), _extend, max_leaves=12)


@given(trees)
@settings(max_examples=300, deadline=None)
def test_unparse_then_parse_gives_the_same_tree(tree: Node) -> None:
    assert parse_expression(unparse(tree)).tree == tree


@given(st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_any_text_parses_or_fails_with_an_expression_error(text: str) -> None:
    try:
        expr = parse_expression(text)
    except ExpressionError as exc:
        assert "condition" in exc.message
        return
    with contextlib.suppress(ExpressionError):
        expr.evaluate(SCOPE)


_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@given(
    st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
    st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
    st.sampled_from(sorted(_OPS)),
)
def test_numeric_comparisons_agree_with_python(a: float, b: float, op: str) -> None:
    scope = {"input": {"a": a, "b": b}}
    assert parse_expression(f"input.a {op} input.b").evaluate(scope) is _OPS[op](a, b)
    assert parse_expression(f"{a!r} {op} {b!r}").evaluate({}) is _OPS[op](a, b)


@given(st.text(max_size=10), st.text(max_size=10))
def test_string_equality_and_membership_agree_with_python(a: str, b: str) -> None:
    scope = {"input": {"a": a, "b": b}}
    assert parse_expression("input.a == input.b").evaluate(scope) is (a == b)
    assert parse_expression("input.a in input.b").evaluate(scope) is (a in b)
    assert parse_expression(unparse(("lit", a)) + " == input.a").evaluate(scope)
