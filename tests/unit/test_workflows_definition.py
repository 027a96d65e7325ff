"""Definitions: validation naming the step, YAML/TOML loading, the registry."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ecl.core import DefinitionError, NotFoundError
from ecl.steps import StepRegistry
from ecl.workflows import (
    DefinitionRegistry,
    RevisionLoop,
    WorkflowDefinition,
    builtin_definitions,
    builtin_steps,
    critique_revise_definition,
    load_definition_file,
    load_definitions,
    parse_definition,
    validate_definition,
)
from tests.unit.workflows_support import AddOne, graph

EXAMPLE = Path(__file__).parents[2] / "examples" / "definitions" / "critique-revise.yaml"


def add_steps() -> StepRegistry:
    return StepRegistry([AddOne()])


def bad(mutate: Callable[[dict[str, Any]], None], data: dict[str, Any] | None = None) -> DefinitionError:
    data = copy.deepcopy(data or graph())
    mutate(data)
    with pytest.raises(DefinitionError) as info:
        parse_definition(data, add_steps())
    assert info.value.definition_id == data.get("id")
    return info.value


def cr_data() -> dict[str, Any]:
    return critique_revise_definition().model_dump(by_alias=True, exclude_none=True)


def bad_cr(mutate: Callable[[dict[str, Any]], None]) -> DefinitionError:
    data = cr_data()
    mutate(data)
    with pytest.raises(DefinitionError) as info:
        parse_definition(data, builtin_steps())
    return info.value


def test_the_sample_graph_is_valid() -> None:
    defn = parse_definition(graph(), add_steps())
    assert defn.dependencies() == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b"}}


# ---------------------------------------------------------------- rejected, with the step named


def test_unknown_step_implementation() -> None:
    err = bad(lambda d: d["steps"][1].update(step="nope"))
    assert err.step_id == "b"
    assert "unknown step implementation 'nope'" in err.message
    assert "known: add" in err.message


def test_unknown_step_id_defaults_to_the_registry_key() -> None:
    err = bad(lambda d: d["steps"][1].pop("step"))
    assert err.step_id == "b"
    assert "'b'" in err.message


def test_unknown_dependency_and_self_dependency() -> None:
    assert bad(lambda d: d["steps"][1].update(depends_on=["zz"])).step_id == "b"
    err = bad(lambda d: d["steps"][1].update(depends_on=["b"]))
    assert (err.step_id, "depends on itself" in err.message) == ("b", True)


def test_duplicate_step() -> None:
    err = bad(lambda d: d["steps"].append(dict(d["steps"][2])))
    assert err.step_id == "c"
    assert "defined twice" in err.message


def test_cycle_outside_a_loop() -> None:
    err = bad(lambda d: d["steps"][0].update(depends_on=["d"]))
    assert "dependency cycle outside a revision loop" in err.message
    assert "a -> d -> b -> a" in err.message or err.step_id in {"a", "b", "d"}
    assert err.step_id in {"a", "b", "d"}


def test_cycle_through_transitions() -> None:
    err = bad(lambda d: d["transitions"].append({"kind": "sequential", "from": "d", "to": "a"}))
    assert "cycle" in err.message
    assert err.step_id in {"a", "b", "d"}


def test_missing_required_input() -> None:
    err = bad(lambda d: d["steps"][2].update(input={}))
    assert err.step_id == "c"
    assert "missing input(s): value" in err.message


def test_unknown_input_field() -> None:
    err = bad(lambda d: d["steps"][2]["input"].update(extra=1))
    assert (err.step_id, "unknown input field(s): extra" in err.message) == ("c", True)


def test_reference_to_a_step_that_is_not_upstream() -> None:
    err = bad(lambda d: d["steps"][2].update(input={"value": "$steps.d.value"}))
    assert err.step_id == "c"
    assert "not an upstream dependency" in err.message


def test_reference_to_an_unknown_step_or_root() -> None:
    assert bad(lambda d: d["steps"][2].update(input={"value": "$steps.zz.value"})).step_id == "c"
    err = bad(lambda d: d["steps"][2].update(input={"value": "$env.HOME"}))
    assert (err.step_id, "must start with one of" in err.message) == ("c", True)
    err = bad(lambda d: d["steps"][2].update(input={"value": "$input"}))
    assert (err.step_id, "names no field" in err.message) == ("c", True)


def test_loop_reference_outside_a_loop() -> None:
    err = bad(lambda d: d["steps"][2].update(input={"value": "$loop.iteration"}))
    assert (err.step_id, "only available inside a revision loop" in err.message) == ("c", True)


def test_invalid_field_names_the_step() -> None:
    err = bad(lambda d: d["steps"][3].update(depends_on="b"))
    assert err.step_id == "d"
    assert "depends_on" in err.message


def test_invalid_step_id_names_the_step() -> None:
    err = bad(lambda d: d["steps"][3].update(step_id="Bad Id"))
    assert err.step_id == "Bad Id"


def test_transition_to_an_unknown_step() -> None:
    err = bad(lambda d: d["transitions"].append({"kind": "sequential", "from": "a", "to": "zz"}))
    assert err.step_id == "zz"


def test_condition_that_does_not_parse_names_the_target() -> None:
    err = bad(lambda d: d.update(transitions=[{"kind": "conditional", "from": "b", "to": "d", "condition": "x =="}]))
    assert err.step_id == "d"
    assert "at position" in err.message


def test_condition_reading_a_step_that_is_not_upstream() -> None:
    cond = {"kind": "conditional", "from": "b", "to": "d", "condition": "steps.c.value > 1"}
    err = bad(lambda d: d.update(transitions=[cond]))
    assert (err.step_id, "not an upstream dependency" in err.message) == ("d", True)
    cond["condition"] = "loop.iteration > 1"
    assert "must start with one of" in bad(lambda d: d.update(transitions=[cond])).message


def test_no_steps() -> None:
    err = bad(lambda d: d.update(steps=[]))
    assert "has no steps" in err.message


def test_unbounded_loop_is_rejected() -> None:
    err = bad_cr(lambda d: d["transitions"][0].pop("max_iterations"))
    assert err.step_id == "revise"
    assert "no bound" in err.message


@pytest.mark.parametrize("bound", [0, -1, 101, 10**6])
def test_loop_bound_must_be_1_to_100(bound: int) -> None:
    err = bad_cr(lambda d: d["transitions"][0].update(max_iterations=bound))
    assert err.step_id == "revise"
    assert "1..100" in err.message


@pytest.mark.parametrize("bound", [1, 100])
def test_loop_bounds_at_the_edges_are_accepted(bound: int) -> None:
    data = cr_data()
    data["transitions"][0]["max_iterations"] = bound
    assert parse_definition(data, builtin_steps()).loops[0].max_iterations == bound


def test_loop_structure_errors() -> None:
    err = bad_cr(lambda d: d["transitions"][0].update(validator="revise"))
    assert (err.step_id, "two different steps" in err.message) == ("revise", True)
    err = bad_cr(lambda d: d["transitions"].append(dict(d["transitions"][0])))
    assert "at most one revision loop" in err.message
    err = bad_cr(lambda d: d["transitions"][0].update(revised_field="nope"))
    assert (err.step_id, "revised_field 'nope'" in err.message) == ("revise", True)
    err = bad_cr(lambda d: d["transitions"][0].update(draft="steps.generate.draft"))
    assert (err.step_id, "must be a $ reference" in err.message) == ("critique", True)
    err = bad_cr(lambda d: d["transitions"][0].update(draft="$steps.final.text"))
    assert (err.step_id, "not an upstream dependency" in err.message) == ("critique", True)


def test_revision_source_must_match_the_loop() -> None:
    err = bad_cr(lambda d: d["steps"][2].update(revision_source="generate"))
    assert err.step_id == "revise"
    assert "needs a revision_loop" in err.message
    err = bad_cr(lambda d: d["steps"][2].update(revision_source="nope"))
    assert err.step_id == "revise"


def test_depending_on_the_reviser_is_rejected() -> None:
    err = bad_cr(lambda d: d["steps"][3].update(depends_on=["revise"]))
    assert err.step_id == "final"
    assert "depend on the validator 'critique' instead" in err.message
    err = bad_cr(lambda d: d["steps"][3]["input"].update(text="$steps.revise.revised_draft"))
    assert (err.step_id, "use $state.current_draft" in err.message) == ("final", True)


def test_reviser_may_only_depend_on_what_its_validator_sees() -> None:
    err = bad_cr(lambda d: d["steps"][2].update(depends_on=["critique", "final"]))
    assert err.step_id == "revise"
    assert "not upstream of its validator" in err.message


def test_the_declared_loop_cycle_is_allowed() -> None:
    """critique depends on revise and revise on critique: that cycle is the loop itself."""
    data = cr_data()
    data["steps"][1]["depends_on"] = ["generate", "revise"]
    data["transitions"].append({"kind": "sequential", "from": "revise", "to": "critique"})
    defn = parse_definition(data, builtin_steps())
    assert defn.dependencies()["critique"] == {"generate"}


@given(st.sampled_from("abcd"), st.sampled_from("abcd"))
@settings(deadline=None)
def test_any_added_edge_is_accepted_acyclic_or_rejected_naming_a_step(source: str, target: str) -> None:
    data = graph()
    data["steps"]["abcd".index(source)]["depends_on"] = [target]
    try:
        defn = parse_definition(data, add_steps())
    except DefinitionError as err:
        assert err.step_id in set("abcd")
        assert err.step_id is not None and repr(err.step_id) in err.message
        return
    # Accepted: then it really is acyclic (a topological order exists).
    deps, order, seen = defn.dependencies(), [], set()
    while len(order) < 4:
        ready = sorted(s for s in deps if s not in seen and deps[s] <= seen)
        assert ready
        order.append(ready[0])
        seen.add(ready[0])


_mutations: list[Callable[[dict[str, Any]], None]] = [
    lambda d: d["steps"][1].update(step="nope"),
    lambda d: d["steps"][2].update(input={}),
    lambda d: d["steps"][0].update(depends_on=["d"]),
    lambda d: d["steps"][2].update(input={"value": "$steps.d.value"}),
    lambda d: d["steps"][3].update(depends_on=["zz"]),
    lambda d: d["steps"][1].update(revision_source="a"),
]


@given(st.lists(st.sampled_from(range(len(_mutations))), min_size=1, max_size=3, unique=True))
@settings(deadline=None)
def test_every_invalid_combination_names_a_step(picks: list[int]) -> None:
    data = graph()
    for pick in picks:
        _mutations[pick](data)
    with pytest.raises(DefinitionError) as info:
        parse_definition(data, add_steps())
    assert info.value.step_id in set("abcd")


# ---------------------------------------------------------------- files and the registry


def test_the_yaml_example_loads_identically_to_the_builtin() -> None:
    loaded = load_definition_file(EXAMPLE, builtin_steps())
    assert loaded == critique_revise_definition()
    assert loaded.model_dump() == critique_revise_definition().model_dump()


def test_the_builtin_survives_a_yaml_and_toml_round_trip(tmp_path: Path) -> None:
    data = critique_revise_definition().model_dump(mode="json", by_alias=True, exclude_none=True)
    (tmp_path / "cr.yaml").write_text(yaml.safe_dump(data))
    assert load_definition_file(tmp_path / "cr.yaml", builtin_steps()) == critique_revise_definition()


def test_toml_definition_loads(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text(
        'id = "one"\nname = "One"\n'
        '[[steps]]\nstep_id = "a"\nstep = "add"\ninput = {value = "$input.n"}\n'
        '[[steps]]\nstep_id = "b"\nstep = "add"\ninput = {value = "$steps.a.value"}\n'
        '[[transitions]]\nkind = "conditional"\nfrom = "a"\nto = "b"\ncondition = "steps.a.value < 10"\n'
    )
    defn = load_definition_file(path, add_steps())
    assert defn.conditions() == {"b": ["steps.a.value < 10"]}
    registry = DefinitionRegistry(add_steps())
    assert registry.load_folder(tmp_path) == ["one"]
    assert registry.get("one") == defn
    assert [d.id for d in registry.list()] == ["one"]


def test_yaml_errors_name_the_file_and_the_step(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: [unclosed\n")
    with pytest.raises(DefinitionError, match="not valid YAML"):
        load_definition_file(path, builtin_steps())
    one_step = {**graph(), "steps": [{"step_id": "a", "step": "add", "input": {}}], "transitions": []}
    path.write_text(yaml.safe_dump(one_step))
    with pytest.raises(DefinitionError) as info:
        load_definition_file(path, add_steps())
    assert info.value.step_id == "a"
    assert "missing input(s): value" in info.value.message
    assert info.value.message.startswith(f"{path}: definition fan: step 'a'")
    path.write_text("- just\n- a list\n")
    with pytest.raises(DefinitionError, match="must be a mapping"):
        load_definition_file(path, add_steps())


def test_toml_errors_and_other_suffixes(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("id = \n")
    with pytest.raises(DefinitionError, match="not valid TOML"):
        load_definition_file(tmp_path / "bad.toml", add_steps())
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DefinitionError, match=r"expected a \.yaml"):
        load_definition_file(tmp_path / "x.json", add_steps())


def test_a_folder_ignores_other_files_and_rejects_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a definition")
    (tmp_path / "fan.yaml").write_text(yaml.safe_dump(graph()))
    assert [d.id for d in load_definitions(tmp_path, add_steps())] == ["fan"]
    assert [d.id for d in load_definitions(tmp_path / "fan.yaml", add_steps())] == ["fan"]
    (tmp_path / "fan2.yml").write_text(yaml.safe_dump(graph()))
    with pytest.raises(DefinitionError, match="already declared"):
        load_definitions(tmp_path, add_steps())
    with pytest.raises(DefinitionError, match="does not exist"):
        load_definitions(tmp_path / "missing", add_steps())


def test_nothing_is_added_unless_the_whole_folder_is_valid(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(graph()))
    broken = graph()
    broken["id"] = "zz"
    broken["steps"][1]["step"] = "nope"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(broken))
    registry = DefinitionRegistry(add_steps())
    with pytest.raises(DefinitionError) as info:
        registry.load_folder(tmp_path)
    assert info.value.step_id == "b"
    assert registry.list() == []


def test_registry_with_builtins_and_a_folder(tmp_path: Path) -> None:
    registry = DefinitionRegistry.with_builtins()
    assert [d.id for d in registry.list()] == ["critique-revise"]
    assert [d.id for d in builtin_definitions()] == ["critique-revise"]
    with pytest.raises(NotFoundError) as info:
        registry.get("nope")
    assert (info.value.kind, info.value.id) == ("definition", "nope")
    assert "critique-revise" in info.value.message
    custom = cr_data()
    custom.update(id="my-flow", name="Mine")
    custom["transitions"][0]["max_iterations"] = 5
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(custom))
    registry = DefinitionRegistry.with_builtins(folder=tmp_path)
    assert [d.id for d in registry.list()] == ["critique-revise", "my-flow"]
    assert "my-flow" in registry
    loop = registry.get("my-flow").loops[0]
    assert isinstance(loop, RevisionLoop)
    assert loop.max_iterations == 5


def test_validate_file_checks_without_adding(tmp_path: Path) -> None:
    registry = DefinitionRegistry.with_builtins()
    assert registry.validate_file(EXAMPLE).id == "critique-revise"
    broken = cr_data()
    broken["id"] = "broken"
    broken["transitions"][0]["max_iterations"] = 0
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(DefinitionError) as info:
        registry.validate_file(tmp_path / "broken.yaml")
    assert info.value.step_id == "revise"
    assert "broken" not in registry


def test_a_definition_written_in_python_is_validated_when_added() -> None:
    defn = WorkflowDefinition.model_validate(graph())
    defn.steps[2].input = {}
    with pytest.raises(DefinitionError) as info:
        DefinitionRegistry(add_steps(), [defn])
    assert info.value.step_id == "c"
    assert validate_definition(WorkflowDefinition.model_validate(graph()), add_steps()).id == "fan"


def test_dollar_dollar_is_a_literal() -> None:
    data = graph()
    data["steps"][0]["input"] = {"value": "$$not-a-ref"}
    defn = parse_definition(data, add_steps())
    assert defn.steps[0].input == {"value": "$$not-a-ref"}
