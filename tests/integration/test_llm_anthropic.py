"""The Anthropic provider through the real SDK against the fake server over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anthropic
import pytest

from ecl.core import LlmError, RetryPolicy
from ecl.llm import AnthropicProvider, CompletionRequest, RetryingProvider
from ecl.testing import FakeAnthropicServer

FAST = RetryPolicy(max_attempts=3, initial_delay=timedelta(milliseconds=10), multiplier=2.0)


_open: list[RetryingProvider] = []


def provider(server: FakeAnthropicServer, policy: RetryPolicy = FAST) -> RetryingProvider:
    llm = RetryingProvider(AnthropicProvider("sk-test-secret-key", "claude-sonnet-5-5", base_url=server.url), policy)
    _open.append(llm)
    return llm


@pytest.fixture(autouse=True)
async def _close_providers() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


HI: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]
REQUEST = CompletionRequest.of("Write one line about durable execution.", system="Be brief.")


async def test_complete_returns_text_usage_and_model(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.enqueue("Durable steps survive crashes.")
    response = await provider(fake_anthropic).complete(REQUEST)
    assert response.content == "Durable steps survive crashes."
    assert response.usage.input > 0 and response.usage.output > 0
    assert response.model == "claude-sonnet-5-5"
    assert response.stop_reason == "end_turn"
    sent = fake_anthropic.requests[0]
    assert sent.json["system"] == "Be brief."
    assert sent.headers["authorization"] == "<redacted>"


async def test_retry_on_429_honours_retry_after(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.enqueue_fault(429, headers={"retry-after": "1"})
    fake_anthropic.enqueue("after the wait")
    started = time.monotonic()
    response = await provider(fake_anthropic).complete(REQUEST)
    elapsed = time.monotonic() - started
    assert response.content == "after the wait"
    assert fake_anthropic.count() == 2
    assert elapsed >= 0.95  # the backoff alone would be 10 ms


async def test_no_retry_on_401(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.enqueue_fault(401)
    with pytest.raises(LlmError) as info:
        await provider(fake_anthropic).complete(REQUEST)
    assert info.value.kind == "auth"
    assert info.value.status_code == 401
    assert not info.value.retryable
    assert fake_anthropic.count() == 1
    assert "sk-test-secret-key" not in str(info.value)


@pytest.mark.parametrize("status", [400, 403, 404])
async def test_client_errors_are_not_retried(fake_anthropic: FakeAnthropicServer, status: int) -> None:
    fake_anthropic.enqueue_fault(status)
    with pytest.raises(LlmError) as info:
        await provider(fake_anthropic).complete(REQUEST)
    assert not info.value.retryable
    assert fake_anthropic.count() == 1


async def test_500_three_times_is_a_retryable_server_error(
    fake_anthropic: FakeAnthropicServer,
) -> None:
    for _ in range(3):
        fake_anthropic.enqueue_fault(500)
    with pytest.raises(LlmError) as info:
        await provider(fake_anthropic).complete(REQUEST)
    assert info.value.kind == "server"
    assert info.value.retryable
    assert info.value.attempts == 3
    assert fake_anthropic.count() == 3


async def test_529_overloaded_then_success(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.enqueue_fault(529)
    fake_anthropic.enqueue("fine now")
    assert (await provider(fake_anthropic).complete(REQUEST)).content == "fine now"
    assert fake_anthropic.count() == 2


async def test_dropped_connection_is_retried(fake_anthropic: FakeAnthropicServer) -> None:
    fake_anthropic.enqueue_drop()
    fake_anthropic.enqueue("reconnected")
    assert (await provider(fake_anthropic).complete(REQUEST)).content == "reconnected"
    assert fake_anthropic.count() == 2


async def test_timeout_is_classified(fake_anthropic: FakeAnthropicServer) -> None:
    from ecl.testing import Reply

    fake_anthropic.enqueue(Reply(text="late", delay=1.0))
    slow = AnthropicProvider("k", "claude-sonnet-5-5", base_url=fake_anthropic.url, timeout=0.2)
    with pytest.raises(LlmError) as info:
        await slow.complete(REQUEST)
    await slow.close()
    assert info.value.kind == "timeout"
    assert info.value.retryable


async def test_streaming_assembles_text_and_usage(fake_anthropic: FakeAnthropicServer) -> None:
    text = "A streamed reply that is longer than one chunk of sixteen characters."
    fake_anthropic.enqueue(text)
    deltas, final = [], None
    async for event in provider(fake_anthropic).stream(REQUEST):
        if event.final is not None:
            final = event.final
        else:
            deltas.append(event.text)
    assert len(deltas) > 1
    assert "".join(deltas) == text
    assert final is not None and final.content == text
    assert final.usage.output == len(text) // 4
    assert fake_anthropic.requests[0].stream


def test_shell_fake_server_serves_the_real_sdk(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["first", {"status": 429, "headers": {"retry-after": "0"}}, "last"]))
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecl.testing.fake_anthropic",
            "--port",
            "0",
            "--script",
            str(script),
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        client = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        request_closer = client.close
        message = client.messages.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].text == "first"  # type: ignore[union-attr]
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=10,
                messages=[{"role": "user", "content": "hi"}],
            )
        with client.messages.stream(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            assert "".join(stream.text_stream) == "last"
        repeated = client.messages.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert repeated.content[0].text == "last"  # type: ignore[union-attr]
        assert len(log.read_text().splitlines()) == 4
        request_closer()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
