"""A scripted LLM for tests and for running workflows without an API key."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ecl.core.errors import LlmError
from ecl.core.metadata import TokenUsage
from ecl.llm.provider import CompletionRequest, CompletionResponse, StreamEvent

__all__ = ["MockLlmProvider", "instance_of", "scripted_workflow_responder"]

Reply = str | CompletionResponse | LlmError


class MockLlmProvider:
    """Canned replies in order, cycling when exhausted; records every request.

    A reply may be text, a full :class:`CompletionResponse`, or an :class:`LlmError` to
    raise. With ``responder`` the reply is computed from the request instead.
    """

    name = "mock"

    def __init__(
        self,
        responses: Sequence[Reply] = (),
        *,
        responder: Callable[[CompletionRequest], Reply] | None = None,
        model: str = "mock-model",
        delay: float = 0.0,
    ) -> None:
        if not responses and responder is None:
            raise ValueError("MockLlmProvider needs responses or a responder")
        self._responses = list(responses)
        self._responder = responder
        self._next = 0
        self.model = model
        self.delay = delay
        self.requests: list[CompletionRequest] = []

    def _reply(self, request: CompletionRequest) -> Reply:
        if self._responder is not None:
            return self._responder(request)
        reply = self._responses[self._next % len(self._responses)]
        self._next += 1
        return reply

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The next canned reply."""
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self._reply(request)
        if isinstance(reply, LlmError):
            raise reply
        if isinstance(reply, CompletionResponse):
            return reply
        prompt = sum(len(m.content) for m in request.messages) + len(request.system_prompt or "")
        return CompletionResponse(
            content=reply,
            usage=TokenUsage(input=max(1, prompt // 4), output=max(1, len(reply) // 4)),
            stop_reason="end_turn",
            model=request.model or self.model,
            latency_ms=self.delay * 1000,
        )

    async def close(self) -> None:
        """Nothing to close."""

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """The next canned reply, in word-sized deltas."""
        response = await self.complete(request)
        words = response.content.split(" ")
        for i, word in enumerate(words):
            yield StreamEvent(text=word if i == 0 else " " + word)
        yield StreamEvent(final=response)


def scripted_workflow_responder(request: CompletionRequest) -> str:
    """Deterministic replies good enough to run Critique-Revise end to end without a key.

    Critique prompts (they ask for JSON) get a passing verdict; everything else gets a
    short draft built from the prompt's last line.
    """
    text = "\n".join(m.content for m in request.messages)
    system = request.system_prompt or ""
    schema = _schema_in(text)
    if schema is not None:
        return json.dumps(instance_of(schema))
    if "Marp" in text:
        return _slides(text)
    if "data block" in system:
        return _document(text)
    if '"decision"' in text or '"decision"' in system:
        return json.dumps(
            {
                "critique": "Clear, accurate and well organised; no changes needed.",
                "decision": "pass",
                "feedback": None,
            }
        )
    subject = text.strip().splitlines()[-1][:200] if text.strip() else "the topic"
    if "feedback" in text.lower():
        return f"Revised draft. {subject}\n\nThis version addresses the feedback."
    return (
        f"Draft. {subject}\n\nDurable execution keeps completed work safe across crashes, "
        "so expensive steps are never paid for twice."
    )


_SCHEMA_MARKER = "matching this JSON schema:"


def _schema_in(text: str) -> dict[str, Any] | None:
    """The JSON schema a prompt asks the answer to match (``... matching this JSON schema:\n{...}``)."""
    at = text.rfind(_SCHEMA_MARKER)
    if at == -1:
        return None
    try:
        schema, _end = json.JSONDecoder().raw_decode(text[at + len(_SCHEMA_MARKER) :].lstrip())
    except json.JSONDecodeError:
        return None
    return schema if isinstance(schema, dict) else None


def instance_of(schema: dict[str, Any], root: dict[str, Any] | None = None, name: str = "value") -> Any:
    """A small value that validates against a JSON schema (objects, arrays, strings, numbers,
    enums, ``$ref`` into ``$defs``, ``anyOf``): the mock's answer to structured-output prompts.
    Numbers take their maximum when bounded (a score of 1.0 means "all done")."""
    root = root or schema
    if "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        return instance_of(root.get("$defs", {}).get(ref, {}), root, name)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"] or schema["anyOf"]
        return instance_of(options[0], root, name)
    kind = schema.get("type")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {key: instance_of(value, root, key) for key, value in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [instance_of(schema.get("items", {}), root, name) for _ in range(count)]
    if kind in ("number", "integer"):
        value = schema.get("maximum", schema.get("minimum", 1))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"Mock {name.replace('_', ' ')}."


def _document(text: str) -> str:
    """A Markdown document naming the files and documents the prompt carried as data."""
    first = text.strip().splitlines()[0] if text.strip() else "Document"
    title = re.sub(r"[*`]", "", first.split(". ")[0])[:120]
    sources = list(dict.fromkeys(re.findall(r'<<<DATA kind="(?:source|document)" (?:path|name)="([^"]+)"', text)))
    lines = [f"# {title}", "", "Written by ECL's mock model (no LLM was called).", ""]
    if sources:
        lines += ["Material considered:", ""] + [f"- `{s}`" for s in sources[:50]]
    return "\n".join(lines) + "\n"


def _slides(text: str) -> str:
    """A three-slide Marp deck."""
    return (
        "---\nmarp: true\n---\n\n# Migration analysis\n\n- Written by ECL's mock model\n\n---\n\n"
        "# Findings\n\n- See grade-report.md\n- See architecture.md\n\n---\n\n# Plan\n\n- See plan.md and specs/\n"
    )
