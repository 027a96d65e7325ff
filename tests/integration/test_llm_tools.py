"""Tool use (a ``read_file``-style tool) through the real anthropic and openai SDKs and the mock."""

from __future__ import annotations

import pytest

from ecl.llm import (
    AnthropicProvider,
    CompletionRequest,
    CompletionResponse,
    LlmProvider,
    Message,
    MockLlmProvider,
    OpenAICompatibleProvider,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from ecl.testing import FakeAnthropicServer
from ecl.testing.anthropic_server import Reply

READ_FILE = ToolSpec(
    name="read_file",
    description="Read one file of the codebase.",
    input_schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)


async def converse(llm: LlmProvider) -> tuple[CompletionResponse, CompletionResponse]:
    """Ask, get a tool call, answer it, get the final text."""
    ask = Message(role="user", content="What does src/store.js do?")
    first = await llm.complete(CompletionRequest(messages=[ask], tools=[READ_FILE], system_prompt="sys"))
    assert first.stop_reason == "tool_use"
    [call] = first.tool_calls
    assert call.name == "read_file"
    assert call.input == {"path": "src/store.js"}
    follow_up = [
        ask,
        Message(role="assistant", content=first.content, tool_calls=first.tool_calls),
        Message(role="user", content="", tool_results=[ToolResult(tool_call_id=call.id, content="class Store {}")]),
    ]
    second = await llm.complete(CompletionRequest(messages=follow_up, tools=[READ_FILE], system_prompt="sys"))
    return first, second


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_tool_calls_round_trip_over_http(fake_anthropic: FakeAnthropicServer, kind: str) -> None:
    llm: AnthropicProvider | OpenAICompatibleProvider
    if kind == "anthropic":
        llm = AnthropicProvider("k", "claude-sonnet-5-5", base_url=fake_anthropic.url)
    else:
        llm = OpenAICompatibleProvider("k", "llama3", base_url=f"{fake_anthropic.url}/v1")
    fake_anthropic.enqueue(
        Reply(
            text="Let me look.", tool_calls=[{"id": "call_1", "name": "read_file", "input": {"path": "src/store.js"}}]
        ),
        "It is the keyspace.",
    )
    try:
        first, second = await converse(llm)
    finally:
        await llm.close()
    assert first.content == "Let me look."
    assert second.content == "It is the keyspace."
    assert second.stop_reason == "end_turn"
    sent_first, sent_second = (r.json for r in fake_anthropic.requests)
    if kind == "anthropic":
        assert sent_first["tools"] == [READ_FILE.model_dump()]
        assistant, user = sent_second["messages"][1:]
        assert assistant["content"][-1] == {
            "type": "tool_use", "id": "call_1", "name": "read_file", "input": {"path": "src/store.js"}
        }  # fmt: skip
        assert user["content"] == [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "class Store {}", "is_error": False}
        ]
        assert "class Store {}" in fake_anthropic.requests[1].text
    else:
        assert sent_first["tools"][0]["function"]["name"] == "read_file"
        assert sent_first["tools"][0]["function"]["parameters"] == READ_FILE.input_schema
        messages = sent_second["messages"]
        assert messages[2]["role"] == "assistant"
        assert messages[2]["tool_calls"][0]["function"] == {
            "name": "read_file",
            "arguments": '{"path": "src/store.js"}',
        }
        assert messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": "class Store {}"}


async def test_the_mock_scripts_tool_calls() -> None:
    mock = MockLlmProvider(
        [
            CompletionResponse(
                content="",
                stop_reason="tool_use",
                tool_calls=[ToolCall(id="t1", name="read_file", input={"path": "src/store.js"})],
            ),
            "It is the keyspace.",
        ]
    )
    _first, second = await converse(mock)
    assert second.content == "It is the keyspace."
    assert mock.requests[1].messages[2].tool_results[0].content == "class Store {}"
