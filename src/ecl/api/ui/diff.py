"""The revision rounds of a run and a word diff between successive drafts.

The drafts are read from the run's step executions, the decisions from its trace
(:func:`ecl.store.trace.trace`, which already finds verdicts and revision rounds):

- round 0's draft is the one the validator (the step whose output carries ``decision``
  ``pass``/``revise``) judged first: its input (written by the step whose output it is,
  e.g. Critique-Revise's ``generate``);
- round N's draft (N ≥ 1) is the output of the step that began revision round N (the
  reviser, e.g. Critique-Revise's ``revise``), or, when it has none yet, what the validator
  judged in that round.

A draft is the value itself when it is a string, else the first string among the fields
``revised_draft``, ``draft``, ``text``, ``content``, else the object's only string field.
:func:`diff_html` marks what changed between two drafts, word by word, as escaped HTML with
``<ins>``/``<del>``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from markupsafe import Markup, escape

from ecl.store.repositories import StepExecutionRecord

__all__ = ["MAX_DIFF_CHARS", "Round", "diff_html", "draft_text", "rounds"]

MAX_DIFF_CHARS = 60_000
"""Drafts longer than this (together) are not diffed word by word (the diff says so)."""

_DRAFT_FIELDS = ("revised_draft", "draft", "text", "content")
_TOKENS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True, slots=True)
class Round:
    """One draft of the run and what was decided about it."""

    number: int
    """0: the first draft; N: the draft of revision round N."""
    step_id: str
    """The step that wrote the draft (the validator that judged it when no step's output is it)."""
    draft: str
    asked: str | None = None
    """The feedback that asked for this draft (a critique's or a human's); ``None`` for round 0."""
    decision: str | None = None
    """The validator's verdict on this draft (``pass``/``revise``), when it judged it."""
    feedback: str | None = None
    """The verdict's feedback."""
    diff: Markup | None = None
    """What changed since the previous round's draft (``None`` for round 0)."""
    added: int = 0
    removed: int = 0
    """Words added and removed since the previous draft."""


def draft_text(value: Any, fields: Sequence[str] = _DRAFT_FIELDS) -> str | None:
    """The draft in a step's input or output (see the module doc), or ``None``."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        return None
    for name in fields:
        if isinstance(value.get(name), str):
            return str(value[name])
    texts = [v for v in value.values() if isinstance(v, str)]
    return texts[0] if len(texts) == 1 else None


def _latest_completed(steps: Sequence[StepExecutionRecord]) -> dict[tuple[str, int], StepExecutionRecord]:
    found: dict[tuple[str, int], StepExecutionRecord] = {}
    for s in steps:  # in start order: a later completed attempt (a retry, a replay) wins
        if s.state == "completed":
            found[(s.step_id, s.iteration)] = s
    return found


def rounds(steps: Sequence[StepExecutionRecord], events: Sequence[Mapping[str, Any]]) -> list[Round]:
    """The run's drafts in order, each with its verdict and the diff from the one before.
    Empty for a run without a validator (no step ever answered pass or revise)."""
    verdicts: dict[int, Mapping[str, Any]] = {}
    asked: dict[int, str | None] = {}
    for event in events:
        if event.get("kind") == "verdict":
            verdicts[int(event.get("iteration", 0))] = event
        elif event.get("kind") == "revision":
            asked[int(event["round"])] = event.get("feedback")
    validator = next((str(v["step_id"]) for v in verdicts.values() if v.get("step_id")), None)
    if validator is None:
        return []
    done = _latest_completed(steps)
    first_of_round: dict[int, str] = {}
    for s in steps:
        if s.iteration > 0 and s.iteration not in first_of_round:
            first_of_round[s.iteration] = s.step_id
    found: list[Round] = []
    for number in sorted({0, *first_of_round}):
        judged = done.get((validator, number))
        reviser = first_of_round.get(number)
        wrote = done.get((reviser, number)) if reviser and reviser != validator else None
        if wrote is not None and (text := draft_text(wrote.output)) is not None:
            step_id = wrote.step_id
        elif judged is not None and (text := draft_text(judged.input)) is not None:
            step_id = _writer(steps, text, number) or validator
        else:
            continue
        verdict = verdicts.get(number) if judged is not None else None
        round_ = Round(
            number=number,
            step_id=step_id,
            draft=text,
            asked=asked.get(number) if number else None,
            decision=str(verdict["decision"]) if verdict else None,
            feedback=verdict.get("feedback") if verdict else None,
        )
        if found:
            marked, added, removed = _diff(found[-1].draft, text)
            round_ = replace(round_, diff=marked, added=added, removed=removed)
        found.append(round_)
    return found


def _writer(steps: Sequence[StepExecutionRecord], text: str, iteration: int) -> str | None:
    """The step of ``iteration`` whose output is the draft ``text`` (e.g. ``generate``)."""
    for s in steps:
        if s.iteration == iteration and s.state == "completed" and draft_text(s.output) == text:
            return s.step_id
    return None


def diff_html(old: str, new: str) -> Markup:
    """``new`` with the words removed since ``old`` as ``<del>`` and the words added as
    ``<ins>``; all text escaped."""
    return _diff(old, new)[0]


def _diff(old: str, new: str) -> tuple[Markup, int, int]:
    if len(old) + len(new) > MAX_DIFF_CHARS:
        note = f"(the drafts are too long to compare word by word: {len(old)} and {len(new)} characters)"
        return Markup('<span class="diff-note">{}</span>').format(note), 0, 0
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    # (same text, removed, added) segments; the spaces alone between two changes join them,
    # so "are nice." → "sleep well." reads as one change, not two with a kept space between.
    segments: list[tuple[str, str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        kept, gone, came = ("".join(a[i1:i2]), "", "") if op == "equal" else ("", "".join(a[i1:i2]), "".join(b[j1:j2]))
        if segments and not kept and not segments[-1][0]:
            _, was_gone, was_came = segments.pop()
            gone, came = was_gone + gone, was_came + came
        elif len(segments) >= 2 and not kept and segments[-1][0].isspace() and not segments[-2][0]:
            space = segments.pop()[0]
            _, was_gone, was_came = segments.pop()
            gone, came = was_gone + space + gone, was_came + space + came
        segments.append((kept, gone, came))
    parts: list[Markup] = []
    added = removed = 0
    for kept, gone, came in segments:
        parts.append(escape(kept))
        if gone:
            removed += len(gone.split())
            parts.append(Markup("<del>{}</del>").format(gone))
        if came:
            added += len(came.split())
            parts.append(Markup("<ins>{}</ins>").format(came))
    return Markup("").join(parts), added, removed
