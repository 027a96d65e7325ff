"""The OpenAI-compatible provider through the real openai SDK against the fake server."""

from __future__ import annotations

from ecl.llm import CompletionRequest, OpenAICompatibleProvider
from ecl.testing import FakeAnthropicServer


async def test_openai_compatible_complete_and_stream(fake_anthropic: FakeAnthropicServer) -> None:
    llm = OpenAICompatibleProvider("k", "llama3", base_url=f"{fake_anthropic.url}/v1")
    fake_anthropic.enqueue("hello from a local model", "streamed reply from a local model")
    response = await llm.complete(CompletionRequest.of("hi", system="sys"))
    assert response.content == "hello from a local model"
    assert response.usage.output > 0
    assert fake_anthropic.requests[0].json["messages"][0] == {"role": "system", "content": "sys"}
    parts, final = [], None
    async for event in llm.stream(CompletionRequest.of("hi")):
        if event.final:
            final = event.final
        else:
            parts.append(event.text)
    assert "".join(parts) == "streamed reply from a local model"
    assert final is not None
    assert final.usage.input > 0
    await llm.close()
