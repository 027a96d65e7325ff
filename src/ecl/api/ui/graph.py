"""A graph definition drawn as inline SVG, server-side: its steps as boxes in columns by depth
(a step sits right of every step it depends on), its dependencies and transitions as arrows (a
conditional one labelled with its condition) and each revision loop as a dashed arrow from the
reviser back to its validator, labelled with its bound. Every name is escaped; the drawing has a
text equivalent (``<title>`` and ``<desc>``) for screen readers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape

from ecl.workflows import Conditional, RevisionLoop, Sequential, WorkflowDefinition

__all__ = ["definition_svg"]

_BOX_H = 40
_ROW_GAP = 28
_COL_GAP = 70
_PAD = 20
_LOOP_BAND = 44
_CHAR_W = 8.5


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    label: str = ""


def _depths(steps: list[str], preds: dict[str, set[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(step: str, path: frozenset[str]) -> int:
        if step in depth:
            return depth[step]
        before = [p for p in preds.get(step, set()) if p in preds and p not in path]
        found = 1 + max((visit(p, path | {step}) for p in before), default=-1)
        depth[step] = found
        return found

    for step in steps:
        visit(step, frozenset())
    return depth


def definition_svg(defn: WorkflowDefinition) -> Markup:
    """The definition's graph as an ``<svg>`` element."""
    names = [s.step_id for s in defn.steps]
    edges = [_Edge(dep, s.step_id) for s in defn.steps for dep in s.depends_on]
    loops: list[RevisionLoop] = []
    for t in defn.transitions:
        if isinstance(t, Sequential):
            edges.append(_Edge(t.from_, t.to))
        elif isinstance(t, Conditional):
            edges.append(_Edge(t.from_, t.to, t.condition))
        elif isinstance(t, RevisionLoop):
            loops.append(t)
    unique: dict[tuple[str, str], _Edge] = {}
    for e in edges:
        if e.source in names and e.target in names:
            unique.setdefault((e.source, e.target), e)
    edges = list(unique.values())
    preds: dict[str, set[str]] = {n: set() for n in names}
    for e in edges:
        preds[e.target].add(e.source)
    depth = _depths(names, preds)
    width = max((len(n) for n in names), default=4) * _CHAR_W + 32
    columns: dict[int, list[str]] = {}
    for n in names:
        columns.setdefault(depth[n], []).append(n)
    box: dict[str, tuple[float, float]] = {}
    for col, members in columns.items():
        for row, n in enumerate(members):
            box[n] = (_PAD + col * (width + _COL_GAP), _PAD + row * (_BOX_H + _ROW_GAP))
    band = _LOOP_BAND * len(loops)  # the loops arch above the boxes, one band each
    box = {n: (x, y + band) for n, (x, y) in box.items()}
    rows = max((len(m) for m in columns.values()), default=1)
    total_w = _PAD * 2 + (max(columns, default=0) + 1) * (width + _COL_GAP) - _COL_GAP
    total_h = _PAD * 2 + band + rows * (_BOX_H + _ROW_GAP) - _ROW_GAP
    slug = re.sub(r"[^a-z0-9]+", "-", defn.id.lower())
    arrow, loop_arrow = f"arrow-{slug}", f"loop-arrow-{slug}"

    parts: list[str] = []
    said: list[str] = []
    for e in edges:
        x1, y1 = box[e.source]
        x2, y2 = box[e.target]
        sx, sy, tx, ty = x1 + width, y1 + _BOX_H / 2, x2, y2 + _BOX_H / 2
        mid = (sx + tx) / 2
        parts.append(
            f'<path class="edge" d="M {sx:.0f} {sy:.0f} C {mid:.0f} {sy:.0f}, {mid:.0f} {ty:.0f}, '
            f'{tx - 2:.0f} {ty:.0f}" marker-end="url(#{arrow})"/>'
        )
        if e.label:
            parts.append(
                f'<text class="loop-label" x="{mid:.0f}" y="{(sy + ty) / 2 - 6:.0f}" '
                f'text-anchor="middle">{escape(e.label)}</text>'
            )
        said.append(f"{e.source} → {e.target}" + (f" when {e.label}" if e.label else ""))
    for i, loop in enumerate(loops):
        if loop.reviser not in box or loop.validator not in box:
            continue
        rx, ry = box[loop.reviser]
        vx, vy = box[loop.validator]
        a = (rx + width / 2, ry)
        b = (vx + width / 2, vy)
        top = _PAD + i * _LOOP_BAND + 22
        bound = f"at most {loop.max_iterations} times" if loop.max_iterations else "until it passes"
        parts.append(
            f'<path class="loop" d="M {a[0]:.0f} {a[1]:.0f} C {a[0]:.0f} {top:.0f}, {b[0]:.0f} {top:.0f}, '
            f'{b[0]:.0f} {b[1] - 2:.0f}" marker-end="url(#{loop_arrow})"/>'
        )
        label = f"revision loop, {bound}"
        total_w = max(total_w, (a[0] + b[0]) / 2 + len(label) * 3.5 + _PAD)
        parts.append(
            f'<text class="loop-label" x="{(a[0] + b[0]) / 2:.0f}" y="{top - 4:.0f}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
        said.append(f"revision loop: {loop.validator} sends the draft back to {loop.reviser}, {bound}")
    for n in names:
        x, y = box[n]
        parts.append(
            f'<g class="node" data-step="{escape(n)}"><rect x="{x:.0f}" y="{y:.0f}" width="{width:.0f}" '
            f'height="{_BOX_H}" rx="6"/><text x="{x + width / 2:.0f}" y="{y + _BOX_H / 2 + 5:.0f}" '
            f'text-anchor="middle">{escape(n)}</text></g>'
        )
    title = f"Steps of {defn.id}"
    desc = "; ".join(said) or "steps: " + ", ".join(names)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" role="img" '
        f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" width="{total_w:.0f}" height="{total_h:.0f}" '
        f'aria-labelledby="g-{slug}-title g-{slug}-desc">'
        f'<title id="g-{slug}-title">{escape(title)}</title><desc id="g-{slug}-desc">{escape(desc)}</desc>'
        f'<defs><marker id="{arrow}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/></marker>'
        f'<marker id="{loop_arrow}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#b45309"/></marker></defs>'
    )
    return Markup(head + "".join(parts) + "</svg>")  # noqa: S704 - every name above is escaped
