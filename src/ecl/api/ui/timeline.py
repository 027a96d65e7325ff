"""The step timeline of a run: one bar per step attempt, laid out like a Gantt chart.

:func:`layout` places each attempt (a row of ``step_executions``) by its start and end time;
attempts that overlap in time go on separate lanes, so concurrent steps show side by side;
a retry is its own bar (attempt number, a failed attempt marked); a running attempt is
open-ended (drawn up to ``now``). :func:`svg` draws the layout as inline SVG, server-side,
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
_LEFT = 12
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
    """Bars in start order, how many lanes they need, and the time they span."""

    bars: list[Bar]
    lanes: int
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
    """Place each attempt on a lane: the first lane free at its start, preferring the lane
    its step used before (so a step's retries stay on one row when nothing overlaps them)."""
    now = now or datetime.now(UTC)
    ordered = sorted(steps, key=lambda s: (s.started_at, s.id))
    if not ordered:
        return Timeline(bars=[], lanes=0, origin=None, span=1.0)
    origin = ordered[0].started_at
    free_at: list[float] = []  # per lane: when its last bar ends
    last_step: list[str] = []  # per lane: the step of its last bar
    bars: list[Bar] = []
    for s in ordered:
        start = (s.started_at - origin).total_seconds()
        running = s.completed_at is None
        end = max(((s.completed_at or now) - origin).total_seconds(), start)
        free = [lane for lane, at in enumerate(free_at) if at <= start]
        same = [lane for lane in free if last_step[lane] == s.step_id]
        if same or free:
            lane = (same or free)[0]
            free_at[lane], last_step[lane] = end, s.step_id
        else:
            lane = len(free_at)
            free_at.append(end)
            last_step.append(s.step_id)
        bars.append(
            Bar(
                execution_id=s.id,
                step_id=s.step_id,
                attempt=s.attempt,
                iteration=s.iteration,
                state=s.state,
                lane=lane,
                start=start,
                end=end,
                running=running,
                tokens=s.tokens_used,
                error=_error_text(s.error),
            )
        )
    span = max(max(b.end for b in bars), 0.001)
    return Timeline(bars=bars, lanes=len(free_at), origin=origin, span=span)


def _ticks(span: float) -> list[float]:
    step = next((t for t in _TICK_STEPS if span / t <= 6), _TICK_STEPS[-1])
    return [i * step for i in range(math.floor(span / step) + 1)]


def _bar_label(text: str, left: float, width: float, y: float) -> Markup:
    """Inside the bar when it fits (white on the bar's colour), else just after it (before it
    near the right edge)."""
    needed = len(text) * _CHAR + 8
    if width >= needed:
        return Markup('<text x="{:.1f}" y="{:.1f}" fill="#fff">{}</text>').format(left + 4, y, text)
    if left + width + needed > _WIDTH:
        return Markup('<text x="{:.1f}" y="{:.1f}" text-anchor="end" fill="#111">{}</text>').format(left - 4, y, text)
    return Markup('<text x="{:.1f}" y="{:.1f}" fill="#111">{}</text>').format(left + width + 4, y, text)


_HEAD = Markup(
    '<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
    'role="img" aria-labelledby="timeline-title timeline-desc" preserveAspectRatio="xMinYMin meet" '
    'font-family="sans-serif" font-size="12"><title id="timeline-title">{title}</title>'
    '<desc id="timeline-desc">{desc}</desc>'
)
_TICK = Markup(
    '<g class="tick"><line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#bbb" stroke-width="1"/>'
    '<text x="{x:.1f}" y="{label}" text-anchor="middle" fill="#333">{text}</text></g>'
)
_BAR = Markup(
    '<g class="bar bar-{kind}" data-step="{step}" data-attempt="{attempt}"><title>{text}</title>'
    '<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{height}" rx="3" fill="{fill}" stroke="#111" '
    'stroke-width="1"{dash}/>{label}</g>'
)
_DASH = Markup(' stroke-dasharray="4 3"')


def svg(timeline: Timeline, *, title: str = "Step timeline") -> Markup:
    """The timeline as an accessible inline SVG (``role="img"``, a ``<title>`` and a
    ``<desc>`` listing every attempt; each bar has its own ``<title>`` tooltip). All text
    is escaped."""
    if not timeline.bars:
        return Markup("")
    height = _AXIS + timeline.lanes * _LANE + _PAD
    plot = _WIDTH - _LEFT - _PAD

    def x(seconds: float) -> float:
        return _LEFT + seconds / timeline.span * plot

    desc = "; ".join(b.text for b in timeline.bars)
    parts = [_HEAD.format(width=_WIDTH, height=height, title=title, desc=desc)]
    for t in _ticks(timeline.span):
        parts.append(_TICK.format(x=x(t), top=_AXIS - 4, bottom=height - _PAD, label=_AXIS - 8, text=duration(t)))
    for b in timeline.bars:
        y = _AXIS + b.lane * _LANE + 3
        width = max(x(b.end) - x(b.start), 3.0)
        kind = "running" if b.running else ("failed" if b.failed else "completed")
        mark = " ✕" if b.failed else (" …" if b.running else "")
        parts.append(
            _BAR.format(
                kind=kind,
                step=b.step_id,
                attempt=b.attempt,
                text=b.text,
                x=x(b.start),
                y=y,
                width=width,
                height=_LANE - 6,
                fill=_FAILED_FILL if b.failed else _FILL.get(b.state, _FILL[COMPLETED]),
                dash=_DASH if b.running else "",
                label=_bar_label(b.label + mark, x(b.start), width, y + _LANE / 2 + 1),
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
