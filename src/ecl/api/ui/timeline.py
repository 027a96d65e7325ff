"""The step timeline of a run: one bar per step attempt, laid out like a Gantt chart.

:func:`layout` places each attempt (a row of ``step_executions``) by its start and end time;
each step has its own lane (row), so steps that ran at the same time show side by side and
a step's retries and revision rounds line up on its row (attempts of one step that overlap
get a lane each); a retry is its own bar (attempt number, a failed attempt marked); a running
attempt is open-ended (drawn up to ``now``). :func:`svg` draws the layout as inline SVG, server-side,
each bar with a ``<title>`` tooltip and the chart with a text summary; the page shows the
same bars as a plain table too (:attr:`Bar.text`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from ecl.store.repositories import StepExecutionRecord

__all__ = ["Bar", "Timeline", "duration", "layout", "svg"]

RUNNING = "running"
COMPLETED = "completed"

_WIDTH = 960
_LEFT = 130  # the left column: the step of each lane
_CHAR = 7.0  # about the width of a character at font-size 12
_LANE = 26
_AXIS = 22
_PAD = 8
_TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
_FILL = {COMPLETED: "#2e7d32", RUNNING: "#1565c0"}
_FAILED_FILL = "#c62828"


@dataclass(frozen=True, slots=True)
class Bar:
    """One step attempt on the timeline (times in seconds from the timeline's origin)."""

    execution_id: str
    step_id: str
    attempt: int
    iteration: int
    state: str
    lane: int
    start: float
    end: float
    """When it ended; for a running attempt, ``now`` (see :attr:`running`)."""
    running: bool
    tokens: int | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """It ended without completing (failed, interrupted, ...)."""
        return not self.running and self.state != COMPLETED

    @property
    def label(self) -> str:
        """``critique (revision 1) #2``: the step, its revision round, the attempt number."""
        round_ = f" (revision {self.iteration})" if self.iteration else ""
        return f"{self.step_id}{round_} #{self.attempt}"

    @property
    def text(self) -> str:
        """One line for people and screen readers."""
        end = "still running" if self.running else f"{self.state} at {duration(self.end)}"
        line = f"{self.label}: started at {duration(self.start)}, {end}, took {duration(self.end - self.start)}"
        if self.tokens:
            line += f", {self.tokens} tokens"
        if self.error:
            line += f"; error: {self.error}"
        return line


@dataclass(frozen=True, slots=True)
class Timeline:
    """Bars in start order, the lanes they are on, and the time they span."""

    bars: list[Bar]
    lanes: list[str]
    """The step of each lane (a step has more than one only when its attempts overlapped)."""
    origin: datetime | None
    span: float
    """Seconds from ``origin`` to the last end (at least a small positive number)."""


def duration(seconds: float) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(int(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min"


def _error_text(error: object) -> str | None:
    if not error:
        return None
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return f"{kind}: {message}" if kind and message else str(message or kind or error)
    return str(error)


def layout(steps: Sequence[StepExecutionRecord], *, now: datetime | None = None) -> Timeline:
    """Place each attempt on a lane of its step: a step's lanes come in the order the step
    first started; an attempt goes on the first of its step's lanes that is free at its start
    (so retries and revision rounds line up on one row), on a new lane when none is."""
    now = now or datetime.now(UTC)
    ordered = sorted(steps, key=lambda s: (s.started_at, s.id))
    if not ordered:
        return Timeline(bars=[], lanes=[], origin=None, span=1.0)
    origin = ordered[0].started_at
    lanes_of: dict[str, list[list[tuple[int, float]]]] = {}  # step -> its lanes -> (bar, end)
    placed: list[tuple[StepExecutionRecord, float, float, int]] = []  # attempt, start, end, lane of its step
    for s in ordered:
        start = (s.started_at - origin).total_seconds()
        end = max(((s.completed_at or now) - origin).total_seconds(), start)
        own = lanes_of.setdefault(s.step_id, [])
        free = next((n for n, lane in enumerate(own) if lane[-1][1] <= start), None)
        if free is None:
            own.append([])
            free = len(own) - 1
        own[free].append((len(placed), end))
        placed.append((s, start, end, free))
    first_lane: dict[str, int] = {}
    lanes: list[str] = []
    for step_id, own in lanes_of.items():  # dicts keep insertion order: first start first
        first_lane[step_id] = len(lanes)
        lanes.extend([step_id] * len(own))
    bars = [
        Bar(
            execution_id=s.id,
            step_id=s.step_id,
            attempt=s.attempt,
            iteration=s.iteration,
            state=s.state,
            lane=first_lane[s.step_id] + n,
            start=start,
            end=end,
            running=s.completed_at is None,
            tokens=s.tokens_used,
            error=_error_text(s.error),
        )
        for s, start, end, n in placed
    ]
    return Timeline(bars=bars, lanes=lanes, origin=origin, span=max(max(b.end for b in bars), 0.001))


def _ticks(span: float) -> list[float]:
    step = next((t for t in _TICK_STEPS if span / t <= 6), _TICK_STEPS[-1])
    return [i * step for i in range(math.floor(span / step) + 1)]


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


_HEAD = Markup(
    '<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
    'role="img" aria-labelledby="timeline-title timeline-desc" preserveAspectRatio="xMinYMin meet" '
    'font-family="sans-serif" font-size="12"><title id="timeline-title">{title}</title>'
    '<desc id="timeline-desc">{desc}</desc>'
)
_TICK = Markup(
    '<g class="tick"><line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#bbb" stroke-width="1"/>'
    '<text x="{x:.1f}" y="{label}" text-anchor="{anchor}" fill="#333">{text}</text></g>'
)
_ROW = Markup(
    '<g class="row"><line x1="0" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="#e5e7eb" stroke-width="1"/>'
    '<text x="{x}" y="{text_y:.1f}" text-anchor="end" fill="#111">{name}</text></g>'
)
_BAR = Markup(
    '<g class="bar bar-{kind}" data-step="{step}" data-attempt="{attempt}"><title>{text}</title>'
    '<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{height}" rx="3" fill="{fill}" stroke="#111" '
    'stroke-width="1"{dash}/>{label}</g>'
)
_INSIDE = Markup('<text x="{:.1f}" y="{:.1f}" fill="#fff">{}</text>')
_AFTER = Markup('<text x="{:.1f}" y="{:.1f}" fill="#111">{}</text>')
_DASH = Markup(' stroke-dasharray="4 3"')


def _bar_label(b: Bar) -> str:
    """``#2``, ``rev 1 #1``, with ✕ for a failed attempt and … for a running one."""
    text = (f"rev {b.iteration} " if b.iteration else "") + f"#{b.attempt}"
    return text + (" ✕" if b.failed else " …" if b.running else "")


def svg(timeline: Timeline, *, title: str = "Step timeline") -> Markup:
    """The timeline as an accessible inline SVG (``role="img"``, a ``<title>`` and a
    ``<desc>`` listing every attempt; each bar has its own ``<title>`` tooltip): one row per
    lane, named by its step on the left; a bar's label inside it when it fits, else after it
    when there is room before the next bar of its lane. All text is escaped."""
    if not timeline.bars:
        return Markup("")
    height = _AXIS + len(timeline.lanes) * _LANE + _PAD
    plot = _WIDTH - _LEFT - _PAD

    def x(seconds: float) -> float:
        return _LEFT + seconds / timeline.span * plot

    desc = "; ".join(b.text for b in timeline.bars)
    parts = [_HEAD.format(width=_WIDTH, height=height, title=title, desc=desc)]
    for n, t in enumerate(_ticks(timeline.span)):
        parts.append(
            _TICK.format(
                x=x(t), top=_AXIS - 4, bottom=height - _PAD, label=_AXIS - 8,
                anchor="start" if n == 0 else "middle", text=duration(t),
            )
        )  # fmt: skip
    previous = ""
    for lane, step_id in enumerate(timeline.lanes):
        y = _AXIS + lane * _LANE
        name = _short(step_id, int((_LEFT - 12) / _CHAR)) if step_id != previous else ""
        parts.append(_ROW.format(y=y, width=_WIDTH, x=_LEFT - 8, text_y=y + _LANE / 2 + 4, name=name))
        previous = step_id
    room: list[float] = []  # per bar: where the next bar of its lane starts
    upcoming: dict[int, float] = {}
    for b in reversed(timeline.bars):
        room.append(upcoming.get(b.lane, float(_WIDTH)))
        upcoming[b.lane] = x(b.start)
    room.reverse()
    for b, until in zip(timeline.bars, room, strict=True):
        y = _AXIS + b.lane * _LANE + 3
        left, width = x(b.start), max(x(b.end) - x(b.start), 3.0)
        label, needed = _bar_label(b), len(_bar_label(b)) * _CHAR + 8
        text_y = y + _LANE / 2 + 1
        if width >= needed:
            shown = _INSIDE.format(left + 4, text_y, label)
        elif left + width + needed <= until:
            shown = _AFTER.format(left + width + 4, text_y, label)
        else:
            shown = Markup("")  # no room: the tooltip and the table say it
        kind = "running" if b.running else ("failed" if b.failed else "completed")
        parts.append(
            _BAR.format(
                kind=kind, step=b.step_id, attempt=b.attempt, text=b.text, x=left, y=y, width=width,
                height=_LANE - 6, fill=_FAILED_FILL if b.failed else _FILL.get(b.state, _FILL[COMPLETED]),
                dash=_DASH if b.running else "", label=shown,
            )
        )  # fmt: skip
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
