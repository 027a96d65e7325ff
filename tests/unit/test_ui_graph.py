"""The definitions page's SVG graph (ecl.api.ui.graph): layout by dependency depth, arrows,
the revision loop, escaping."""

from __future__ import annotations

import re

from ecl.api.ui.graph import definition_svg
from ecl.workflows import WorkflowDefinition, critique_revise_definition


def _boxes(svg: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r'<g class="node" data-step="([^"]+)"><rect x="(\d+)" y="(\d+)"', svg)
    return {name: (int(x), int(y)) for name, x, y in found}


def test_critique_revise_columns_follow_the_dependencies() -> None:
    svg = str(definition_svg(critique_revise_definition()))
    boxes = _boxes(svg)
    assert set(boxes) == {"generate", "critique", "revise", "final"}
    assert boxes["generate"][0] < boxes["critique"][0] < boxes["revise"][0]
    assert boxes["revise"][0] == boxes["final"][0]  # both depend on critique only
    assert boxes["revise"][1] != boxes["final"][1]
    assert svg.count('class="edge"') == 3
    assert svg.count('class="loop"') == 1
    assert 'role="img"' in svg
    assert "<desc" in svg


def test_a_conditional_transition_is_labelled_and_escaped() -> None:
    defn = WorkflowDefinition.model_validate(
        {
            "id": "branchy",
            "name": "Branchy",
            "steps": [{"step_id": "score"}, {"step_id": "low"}, {"step_id": "high"}],
            "transitions": [
                {"kind": "conditional", "from": "score", "to": "low", "condition": "$steps.score.value < 3"},
                {"kind": "sequential", "from": "score", "to": "high"},
            ],
        }
    )
    svg = str(definition_svg(defn))
    assert "$steps.score.value &lt; 3" in svg
    assert "< 3" not in svg
    boxes = _boxes(svg)
    assert boxes["score"][0] < boxes["low"][0] == boxes["high"][0]
    assert 'class="loop"' not in svg


def test_a_cycle_of_dependencies_still_draws() -> None:
    defn = WorkflowDefinition.model_construct(
        id="cycle",
        name="Cycle",
        steps=[
            critique_revise_definition().steps[0].model_copy(update={"step_id": "a", "depends_on": ["b"]}),
            critique_revise_definition().steps[0].model_copy(update={"step_id": "b", "depends_on": ["a"]}),
        ],
        transitions=[],
    )
    assert set(_boxes(str(definition_svg(defn)))) == {"a", "b"}
