"""A fake Anthropic Messages API server: real HTTP on loopback, scripted replies, faults.

Use it in tests through the real ``anthropic`` SDK (``base_url=server.url``)::

    with FakeAnthropicServer() as server:
        server.enqueue("Hello")                                  # a reply
        server.enqueue_fault(429, headers={"retry-after": "1"})  # a fault
        hold = server.hold_next(lambda req: "critique" in req.text)
        ...                                                      # the request waits
        hold.wait_arrived(10); hold.release()
        assert server.count(lambda r: "generate" in r.text) == 1

From the shell (another process's tests count requests in the ``--log`` file)::

    python -m ecl.testing.fake_anthropic --port 0 --script replies.json --log requests.jsonl

``replies.json`` is a JSON list; each item is a string (the reply's text) or an object:
``{"status": 429, "headers": {...}, "body": {...}}`` (a fault), ``{"text": "...",
"delay": 0.5}`` or ``{"drop": true}`` (close the connection without answering). The list
is served in order and its last item repeats when it runs out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["FakeAnthropicServer", "Hold", "ReceivedRequest", "Reply", "main"]


@dataclass
class Reply:
    """One scripted answer."""

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0
    drop: bool = False
    usage: dict[str, int] | None = None
    """Token counts to report instead of the computed ones (e.g. ``cache_read_input_tokens``)."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Tool calls to answer with (``{"id", "name", "input"}``; non-streamed replies): the reply
    then ends with ``stop_reason`` ``tool_use`` (``tool_calls`` on the OpenAI path)."""

    @classmethod
    def parse(cls, item: Any) -> Reply:
        """From a script item: a string or an object."""
        if isinstance(item, str):
            return cls(text=item)
        if isinstance(item, dict):
            return cls(
                text=str(item.get("text", "")),
                status=int(item.get("status", 200)),
                headers={str(k): str(v) for k, v in (item.get("headers") or {}).items()},
                body=item.get("body"),
                delay=float(item.get("delay", 0.0)),
                drop=bool(item.get("drop", False)),
                usage=item.get("usage"),
                tool_calls=list(item.get("tool_calls") or []),
            )
        raise ValueError(f"script item must be a string or an object, got {item!r}")


def _block_text(block: dict[str, Any]) -> str:
    """The text of a content block; a ``tool_result`` block's content counts as text."""
    if block.get("type") == "tool_result":
        inner = block.get("content")
        if isinstance(inner, list):
            return "\n".join(str(b.get("text", "")) for b in inner if isinstance(b, dict))
        return str(inner or "")
    return str(block.get("text", ""))


@dataclass
class ReceivedRequest:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any]
    time: float
    stream: bool

    @property
    def text(self) -> str:
        """System prompt and message contents, joined (for matching in tests)."""
        parts: list[str] = []
        system = self.json.get("system")
        if isinstance(system, str):
            parts.append(system)
        elif isinstance(system, list):
            parts += [str(b.get("text", "")) for b in system if isinstance(b, dict)]
        for message in self.json.get("messages", []) or []:
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [_block_text(b) for b in content if isinstance(b, dict)]
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (as written to the log file)."""
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "json": self.json,
            "time": self.time,
            "stream": self.stream,
        }


class Hold:
    """Keeps one matching request open until released."""

    def __init__(self, matching: Callable[[ReceivedRequest], bool]) -> None:
        self.matching = matching
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.request: ReceivedRequest | None = None

    def wait_arrived(self, timeout: float = 30.0) -> ReceivedRequest:
        """Block until the request is being held; raises TimeoutError."""
        if not self.arrived.wait(timeout):
            raise TimeoutError("the held request did not arrive")
        assert self.request is not None
        return self.request

    def release(self) -> None:
        """Let the request be answered."""
        self.released.set()


Responder = Callable[[ReceivedRequest], "str | Reply"]


class FakeAnthropicServer:
    """The server. Start with :meth:`start` or use as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        responder: Responder | None = None,
        repeat_last: bool = False,
        log_path: Path | str | None = None,
        default_text: str = "ok",
    ) -> None:
        self.responder = responder
        self.repeat_last = repeat_last
        self.default_text = default_text
        self.log_path = Path(log_path) if log_path else None
        self._queue: list[Reply] = []
        self._last: Reply | None = None
        self._holds: list[Hold] = []
        self._lock = threading.Lock()
        self.cached_prefixes: set[str] = set()
        """Prompt-cache entries: the prefixes (up to a ``cache_control`` breakpoint) seen so far."""
        self.requests: list[ReceivedRequest] = []
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for the SDK (``base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAnthropicServer:
        """Serve in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-anthropic", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (held requests are released)."""
        with self._lock:
            for hold in self._holds:
                hold.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeAnthropicServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, *texts: str | Reply) -> None:
        """Queue replies (texts or :class:`Reply` objects)."""
        with self._lock:
            self._queue += [t if isinstance(t, Reply) else Reply(text=t) for t in texts]

    def enqueue_fault(
        self,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Queue an error response."""
        self.enqueue(Reply(status=status, headers=headers or {}, body=body, delay=delay))

    def enqueue_drop(self) -> None:
        """Queue a dropped connection (closed without a response)."""
        self.enqueue(Reply(drop=True))

    def hold_next(self, matching: Callable[[ReceivedRequest], bool] | None = None) -> Hold:
        """Hold the next request that matches until :meth:`Hold.release`."""
        hold = Hold(matching or (lambda _r: True))
        with self._lock:
            self._holds.append(hold)
        return hold

    def count(self, matching: Callable[[ReceivedRequest], bool] | None = None) -> int:
        """How many received requests match."""
        with self._lock:
            return sum(1 for r in self.requests if matching is None or matching(r))

    # ------------------------------------------------------------------ serving

    def _record(self, request: ReceivedRequest) -> Hold | None:
        with self._lock:
            self.requests.append(request)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(request.to_dict()) + "\n")
            for hold in self._holds:
                if hold.request is None and hold.matching(request):
                    hold.request = request
                    self._holds.remove(hold)
                    return hold
        return None

    def _next_reply(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            if self._queue:
                reply = self._queue.pop(0)
                self._last = reply
                return reply
            if self.repeat_last and self._last is not None:
                return self._last
        if self.responder is not None:
            answer = self.responder(request)
            return answer if isinstance(answer, Reply) else Reply(text=answer)
        return Reply(text=self.default_text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A real API takes a burst of connections; socketserver's default backlog of 5 made
    # some of 20 workflows' first calls, started together, fail to connect.
    request_queue_size = 128
    fake: FakeAnthropicServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        headers = {k.lower(): v for k, v in self.headers.items()}
        for secret in ("x-api-key", "authorization"):
            if secret in headers:
                headers[secret] = "<redacted>"
        request = ReceivedRequest(
            method="POST",
            path=self.path,
            headers=headers,
            json=body if isinstance(body, dict) else {},
            time=time.time(),
            stream=bool(isinstance(body, dict) and body.get("stream")),
        )
        fake = self.server.fake
        hold = fake._record(request)
        if hold is not None:
            hold.arrived.set()
            hold.released.wait()
        reply = fake._next_reply(request)
        if reply.delay:
            time.sleep(reply.delay)
        try:
            if reply.drop:
                self._drop()
            elif reply.status != 200:
                self._error(reply)
            elif self.path.startswith("/v1/chat/completions"):
                self._openai(request, reply)
            elif request.stream:
                self._sse(request, reply)
            else:
                self._json(200, _message(request, reply.text, reply.usage, reply.tool_calls, fake), reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, reply: Reply) -> None:
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        body = reply.body or {
            "type": "error",
            "error": {
                "type": kinds.get(reply.status, "api_error"),
                "message": f"fake error {reply.status}",
            },
        }
        self._json(reply.status, body, reply.headers)

    def _sse(self, request: ReceivedRequest, reply: Reply) -> None:
        message = _message(request, reply.text, reply.usage, reply.tool_calls, self.server.fake)
        usage = message["usage"]
        start = dict(message, content=[], stop_reason=None, usage={**usage, "output_tokens": 1})
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for chunk in _chunks(reply.text):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": chunk},
                    },
                )
            )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    def _openai(self, request: ReceivedRequest, reply: Reply) -> None:
        prompt = sum(len(str(m.get("content", ""))) for m in request.json.get("messages", []))
        model = str(request.json.get("model", "fake"))
        usage = {
            "prompt_tokens": max(1, prompt // 4),
            "completion_tokens": max(1, len(reply.text) // 4),
            "total_tokens": max(1, prompt // 4) + max(1, len(reply.text) // 4),
        }
        if not request.stream:
            self._json(
                200,
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.text, **_openai_tools(reply)},
                            "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                        }
                    ],
                    "usage": usage,
                },
                {},
            )
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
        }
        for chunk in _chunks(reply.text):
            data = dict(base, choices=[{"index": 0, "delta": {"content": chunk}, "finish_reason": None}])
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        final = dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
        self.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
        self.wfile.write(f"data: {json.dumps(dict(base, choices=[], usage=usage))}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _openai_tools(reply: Reply) -> dict[str, Any]:
    if not reply.tool_calls:
        return {}
    return {
        "tool_calls": [
            {
                "id": str(c.get("id") or f"call_{uuid.uuid4().hex[:20]}"),
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c.get("input", {}))},
            }
            for c in reply.tool_calls
        ]
    }


def _chunks(text: str, size: int = 16) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


def _cached_prefix(body: dict[str, Any]) -> str:
    """The prompt up to its last ``cache_control`` breakpoint (system, then messages), or ""."""
    parts: list[str] = []
    prefix = ""
    system = body.get("system")
    blocks: list[Any] = []
    if isinstance(system, list):
        blocks += system
    elif isinstance(system, str):
        parts.append(system)
    for message in body.get("messages", []) or []:
        content = message.get("content")
        blocks += content if isinstance(content, list) else [{"text": content}]
    for block in blocks:
        if isinstance(block, dict):
            parts.append(str(block.get("text", "")))
            if block.get("cache_control"):
                prefix = "".join(parts)
    return prefix


def _message(
    request: ReceivedRequest,
    text: str,
    usage: dict[str, int] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    fake: FakeAnthropicServer | None = None,
) -> dict[str, Any]:
    prompt = len(request.text)
    # A simulated prompt cache: the prefix up to the last breakpoint is written the first
    # time it is seen (cache_creation) and read afterwards (cache_read), as Anthropic reports.
    prefix = _cached_prefix(request.json)
    created = read = 0
    if prefix and fake is not None:
        key = f"{request.json.get('model')}:{prefix}"
        with fake._lock:
            seen = key in fake.cached_prefixes
            fake.cached_prefixes.add(key)
        created, read = (0, len(prefix) // 4) if seen else (len(prefix) // 4, 0)
        prompt = max(0, prompt - len(prefix))
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": str(request.json.get("model", "claude-fake")),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": max(1, prompt // 4),
            "output_tokens": max(1, len(text) // 4),
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        },
    }
    if usage:
        message["usage"] = {**message["usage"], **usage}
    if tool_calls:
        if not text:
            message["content"] = []
        message["content"] += [
            {"type": "tool_use", "id": str(c.get("id") or f"toolu_{uuid.uuid4().hex[:20]}"), "name": c["name"],
             "input": c.get("input", {})}
            for c in tool_calls
        ]  # fmt: skip
        message["stop_reason"] = "tool_use"
    return message


def main(argv: list[str] | None = None) -> None:
    """``python -m ecl.testing.fake_anthropic``: serve a script until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m ecl.testing.fake_anthropic")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument("--script", type=Path, help="JSON list of replies (see module docs)")
    parser.add_argument("--log", type=Path, help="append one JSON line per request received")
    args = parser.parse_args(argv)
    server = FakeAnthropicServer(port=args.port, repeat_last=True, log_path=args.log)
    if args.script is not None:
        try:
            items = json.loads(args.script.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            sys.exit(f"fake_anthropic: cannot read --script {args.script}: {exc}")
        if not isinstance(items, list) or not items:
            sys.exit(f"fake_anthropic: --script {args.script} must hold a non-empty JSON list")
        try:
            server.enqueue(*[Reply.parse(item) for item in items])
        except ValueError as exc:
            sys.exit(f"fake_anthropic: --script {args.script}: {exc}")
    server.start()
    print(f"listening on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
