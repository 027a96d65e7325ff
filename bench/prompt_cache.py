"""Tokens and cost of a 3-revision Critique-Revise run with and without prompt caching.

    uv run python bench/prompt_cache.py        # also run by `make bench`

The official ``anthropic`` SDK talks to ``ecl.testing.FakeAnthropicServer`` over loopback
HTTP; the fake server keeps a prompt cache as Anthropic does (a prefix up to a
``cache_control`` breakpoint is written the first time, read afterwards) and reports the
tokens the same way, so the figures show what the breakpoints ECL sets are worth at the
shipped prices (claude-sonnet-5-5). Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import structlog

from ecl.core import TokenUsage
from ecl.llm import AnthropicProvider, PriceTable
from ecl.steps import Step
from ecl.testing import FakeAnthropicServer, InMemoryDurableContext, ReceivedRequest
from ecl.workflows import DefinitionRegistry, WorkflowOrchestrator, builtin_steps

MODEL = "claude-sonnet-5-5"
REVISE = json.dumps({"critique": "thin", "decision": "revise", "feedback": "add a concrete example"})
PASS = json.dumps({"critique": "good", "decision": "pass", "feedback": None})


def _responder() -> Any:
    critiques = [REVISE, REVISE, REVISE, PASS]
    seen = {"critique": 0, "revise": 0}

    def respond(request: ReceivedRequest) -> str:
        if '"decision"' in request.text:
            reply = critiques[min(seen["critique"], len(critiques) - 1)]
            seen["critique"] += 1
            return reply
        if "Revise the draft below" in request.text:
            seen["revise"] += 1
            return f"Draft {seen['revise']}: durable execution journals every step. " * 20
        return "Draft 0: durable execution journals every step. " * 20

    return respond


async def one_run(cache: bool) -> tuple[TokenUsage, Decimal, int]:
    steps = builtin_steps()
    originals: dict[type[Step[Any, Any]], bool] = {}
    for step_id in ("generate", "critique", "revise"):
        cls = type(steps.get(step_id))
        originals[cls] = cls.prompt_cache
        cls.prompt_cache = cache
    try:
        with FakeAnthropicServer(responder=_responder()) as server:
            llm = AnthropicProvider("sk-bench", MODEL, base_url=server.url)
            orchestrator = WorkflowOrchestrator(
                DefinitionRegistry.with_builtins(), steps, llm, prices=PriceTable.shipped()
            )
            result = await orchestrator.run(
                InMemoryDurableContext(f"bench-{cache}"), "critique-revise", {"topic": "Rust"}
            )
            await llm.close()
            usage = sum((m.llm_tokens_used or TokenUsage() for m in result.steps), TokenUsage())
            return usage, result.cost_usd, result.revisions
    finally:
        for cls, value in originals.items():
            cls.prompt_cache = value


def main() -> None:
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    print(f"Critique-Revise, 3 revisions, {MODEL} at the shipped prices (fake server over HTTP)")
    print(f"{'prompt cache':<14}{'input':>8}{'cache write':>13}{'cache read':>12}{'output':>8}{'cost USD':>14}")
    costs = {}
    for cache in (False, True):
        usage, cost, revisions = asyncio.run(one_run(cache))
        assert revisions == 3, revisions
        costs[cache] = cost
        print(
            f"{'on' if cache else 'off':<14}{usage.input:>8}{usage.cache_creation:>13}{usage.cache_read:>12}"
            f"{usage.output:>8}{cost:>14.6f}"
        )
    saved = (costs[False] - costs[True]) / costs[False] * 100 if costs[False] else Decimal(0)
    print(f"saving: {saved:.1f}% of the cost")


if __name__ == "__main__":
    main()
