"""Built-in workflows: Critique-Revise (generate -> critique <-> revise -> final).

The steps and their models live in :mod:`ecl.workflows.builtin.critique_revise`.
"""

from ecl.workflows.builtin.critique_revise import (
    builtin_definitions,
    builtin_step_list,
    builtin_steps,
    builtin_workflows,
    critique_revise_definition,
    parse_critique,
)

__all__ = [
    "builtin_definitions",
    "builtin_step_list",
    "builtin_steps",
    "builtin_workflows",
    "critique_revise_definition",
    "parse_critique",
]
