"""User modules, entry points and providers reach the catalog (and so every entry point)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ecl.cli.app import describe_error
from ecl.config import load_settings
from ecl.core import ConfigError
from ecl.engines.factory import build_catalog, build_prices
from ecl.llm import PROVIDERS_GROUP, build_provider, provider_names
from ecl.llm import registry as llm_registry
from ecl.workflows import CodeWorkflow, WorkflowCatalog

FLOWS = '''
"""A user's module."""
import ecl
from pathlib import Path
from pydantic import BaseModel


class Text(BaseModel):
    text: str


class Echo(ecl.Step[Text, Text]):
    """A class-based step: found in the module and registered."""

    id = "echo"

    async def execute(self, ctx: ecl.StepContext, input: Text) -> ecl.Success[Text]:
        return ecl.Success(input)


@ecl.step
async def exclaim(ctx: ecl.StepContext, text: str) -> str:
    """Add an exclamation mark."""
    return text + "!"


@ecl.workflow("loud")
async def loud(ctx: ecl.WorkflowContext, text: str) -> str:
    """Be loud."""
    return await exclaim(ctx, text)


definitions = ecl.DefinitionFiles(Path(__file__).parent / "defs")
'''

YAML = """
id: loud-graph
name: Loud as a graph
steps:
  - step_id: exclaim
    input: {text: $input.text}
"""


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``flows`` (a workflow, a step, a YAML definition using the step, a prompts folder),
    ``clash`` (the same workflow id), ``broken`` (raises on import)."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text(FLOWS)
    (tmp_path / "flows" / "defs").mkdir()
    (tmp_path / "flows" / "defs" / "loud.yaml").write_text(YAML)
    (tmp_path / "flows" / "prompts").mkdir()
    (tmp_path / "flows" / "prompts" / "mine.j2").write_text("Hello {{ name }}")
    (tmp_path / "clash.py").write_text(
        textwrap.dedent(
            """
            import ecl

            @ecl.workflow("loud")
            async def other(ctx: ecl.WorkflowContext) -> None:
                return None
            """
        )
    )
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("flows", "clash", "broken"):
        sys.modules.pop(name, None)


def test_a_module_adds_its_workflows_steps_definition_files_and_prompts(user_modules: Path) -> None:
    catalog = WorkflowCatalog.build(modules=["flows"], entry_points=False)
    assert {"loud", "loud-graph"} <= set(catalog.ids())
    assert isinstance(catalog.get("loud"), CodeWorkflow)
    assert catalog.get("loud-graph").steps[0].step_id == "exclaim"
    assert "exclaim" in catalog.steps
    assert "echo" in catalog.steps
    assert catalog.source_of("loud") == "module flows"
    assert catalog.prompt_dirs == [user_modules / "flows" / "prompts"]


def test_the_settings_modules_reach_the_catalog_every_entry_point_builds(user_modules: Path) -> None:
    settings = load_settings(environ={"ECL_MODULES": " flows , ", "ECL_DATABASE_URL": "sqlite://"}, cwd=user_modules)
    assert settings.modules == ["flows"]
    assert "loud" in build_catalog(settings).ids()


def test_a_module_that_does_not_import_is_one_line_naming_module_and_exception(user_modules: Path) -> None:
    with pytest.raises(ConfigError) as info:
        WorkflowCatalog.build(modules=["broken"], entry_points=False)
    assert str(info.value) == (
        "module 'broken' failed to import: ModuleNotFoundError: No module named 'no_such_module_here'"
    )
    assert info.value.key == "modules"
    with pytest.raises(ConfigError, match="module 'nowhere' failed to import: ModuleNotFoundError"):
        WorkflowCatalog.build(modules=["nowhere"], entry_points=False)


def test_a_workflow_id_declared_by_two_modules_is_one_line_naming_both(user_modules: Path) -> None:
    with pytest.raises(ConfigError) as info:
        WorkflowCatalog.build(modules=["flows", "clash"], entry_points=False)
    assert str(info.value) == "workflow id 'loud' is declared twice: in module flows and in module clash"


def test_the_same_workflow_reached_twice_is_no_clash(user_modules: Path) -> None:
    import flows  # type: ignore[import-not-found]

    catalog = WorkflowCatalog.build(workflows=[flows.loud], modules=["flows"], entry_points=False)
    assert catalog.get("loud") is flows.loud


def test_a_user_module_may_replace_a_built_in_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.py").write_text(
        "import ecl\n\n@ecl.workflow('critique-revise')\nasync def mine(ctx: ecl.WorkflowContext) -> int:\n"
        "    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        catalog = WorkflowCatalog.build(modules=["mine"], entry_points=False)
    finally:
        sys.modules.pop("mine", None)
    assert isinstance(catalog.get("critique-revise"), CodeWorkflow)


def test_provider_names_come_from_the_registry() -> None:
    assert provider_names()[:3] == ["anthropic", "openai", "mock"]
    with pytest.raises(ConfigError) as info:
        build_provider("nope", model="m")
    assert str(info.value).startswith("llm.provider = 'nope': expected one of anthropic, openai, mock")
    assert build_provider("mock", model="m").name == "mock"


@pytest.fixture
def provider_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Three installed ``ecl.providers`` entry points: one whose module is missing, one whose
    module raises a two-line error, one that works."""
    (tmp_path / "raising_llm.py").write_text('raise RuntimeError("no key for the model\\nsecond line")\n')
    (tmp_path / "good_llm.py").write_text(
        "from ecl.llm import MockLlmProvider\n"
        "def build(options):\n"
        "    return MockLlmProvider(['hi'], model=options.model)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    installed = [
        EntryPoint(name="missing", value="no_such_provider_pkg.llm:build", group=PROVIDERS_GROUP),
        EntryPoint(name="raising", value="raising_llm:build", group=PROVIDERS_GROUP),
        EntryPoint(name="good", value="good_llm:build", group=PROVIDERS_GROUP),
    ]
    monkeypatch.setattr(llm_registry, "entry_points", lambda group: installed if group == PROVIDERS_GROUP else [])
    try:
        yield
    finally:
        for name in ("raising_llm", "good_llm"):
            sys.modules.pop(name, None)


@pytest.mark.usefixtures("provider_entry_points")
def test_a_provider_entry_point_is_one_more_name() -> None:
    assert provider_names() == ["anthropic", "openai", "mock", "good", "missing", "raising"]
    llm = build_provider("good", model="m-1")
    assert (llm.name, llm.model) == ("mock", "m-1")


@pytest.mark.usefixtures("provider_entry_points")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "missing",
            "LLM provider 'missing': entry point missing (no_such_provider_pkg.llm:build) failed to import: "
            "ModuleNotFoundError: No module named 'no_such_provider_pkg'",
        ),
        (
            "raising",
            "LLM provider 'raising': entry point raising (raising_llm:build) failed to import: "
            "RuntimeError: no key for the model",
        ),
    ],
)
def test_a_provider_entry_point_that_fails_to_import_is_one_line_exit_5(name: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_provider(name, model="m")
    assert describe_error(info.value) == (expected, None, 5)  # what `ecl` prints after "error: ", and exits with
    assert (info.value.key, info.value.value) == ("llm.provider", name)


@pytest.mark.usefixtures("provider_entry_points")
def test_a_bad_provider_name_is_reported_before_a_missing_price(tmp_path: Path) -> None:
    for name, start in [("nope", "llm.provider = 'nope': expected one of"), ("missing", "LLM provider 'missing':")]:
        with pytest.raises(ConfigError) as info:
            build_prices(load_settings(environ={"ECL_LLM_PROVIDER": name, "ECL_LLM_MODEL": "m"}, cwd=tmp_path))
        assert str(info.value).startswith(start)
