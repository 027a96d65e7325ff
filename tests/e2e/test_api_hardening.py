"""A hostile client against ``ecl server start``: body limits, poison input, the auth surface,
the OpenAPI contract (through models generated from it) and a table of bad inputs."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.helpers import Ecl
from tests.e2e.test_api import KEY, Server

# Servers and many CLI processes on a shared 2-core machine: generous limits, no timing asserts.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
JSON = {"content-type": "application/json"}

MB = 1024 * 1024
SUBMIT = "/workflows"
ENVELOPE_KEYS = {"code", "message", "details"}


def rss(server: Server) -> int:
    """The server process's resident memory in bytes."""
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def body(input_json: str, **extra: Any) -> bytes:
    """A submission whose ``input`` is the raw JSON text given (so it can be invalid)."""
    fields = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in extra.items())
    return (
        '{"definition_id": "critique-revise", "input": ' + input_json + (", " + fields if fields else "") + "}"
    ).encode()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The documented status and the one error body: a one-line message, no traceback."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    doc = response.json()
    assert set(doc) == {"error"}, doc
    assert set(doc["error"]) == ENVELOPE_KEYS, doc
    error: dict[str, Any] = doc["error"]
    if code is not None:
        assert error["code"] == code, doc
    assert isinstance(error["message"], str) and error["message"] and "\n" not in error["message"]
    assert "Traceback" not in response.text
    return error


@pytest.fixture
def ecl(tmp_path: Path) -> Ecl:
    instance = Ecl(tmp_path, "http://127.0.0.1:9")  # the mock LLM: no provider needed
    assert instance.run("migrate", timeout=600).returncode == 0
    return instance


@pytest.fixture
def server(ecl: Ecl) -> Iterator[Server]:
    srv = Server(ecl, ECL_API_KEY=KEY, ECL_LLM_PROVIDER="mock")
    try:
        yield srv.start()
    finally:
        srv.stop()


def submit(api: httpx.Client, topic: str) -> str:
    created = api.post(SUBMIT, json={"definition_id": "critique-revise", "input": {"topic": topic}})
    assert created.status_code == 201, created.text
    wid: str = created.json()["id"]
    return wid


def all_ids(api: httpx.Client) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = api.get("/workflows", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text[:500]
        ids += [w["id"] for w in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return ids


def listed_json(ecl: Ecl) -> Any:
    done = ecl.run("list", "--limit", "100", "--format", "json", timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ------------------------------------------------------------------ item 1: body size, key first


def test_body_limit_is_enforced_while_streaming_and_the_key_is_checked_first(server: Server) -> None:
    """A 34 MB body neither grows the server's memory nor is parsed: 401 without the key,
    413 with it (announced or streamed in chunks); depth and string size are bounded too."""
    big = b'{"definition_id": "critique-revise", "input": {"topic": "' + b"x" * (34 * MB) + b'"}}'
    with server.client() as api, server.client(None) as anonymous:
        api.get("/workflows")  # warm up the code paths before the baseline
        before = rss(server)
        assert_error(anonymous.post(SUBMIT, content=big, headers=JSON), 401, "UNAUTHORIZED")
        too_large = assert_error(api.post(SUBMIT, content=big, headers=JSON), 413, "PAYLOAD_TOO_LARGE")
        assert too_large["details"] == {"max_body_bytes": MB}

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), MB):
                yield big[start : start + MB]

        assert_error(api.post(SUBMIT, content=chunks(), headers=JSON), 413, "PAYLOAD_TOO_LARGE")
        assert_error(anonymous.post(SUBMIT, content=chunks(), headers=JSON), 401, "UNAUTHORIZED")
        grown = rss(server) - before
        assert grown < 20 * MB, f"server RSS grew by {grown / MB:.1f} MB"
        deep = assert_error(api.post(SUBMIT, content=body(nested(40)), headers=JSON), 400, "VALIDATION_ERROR")
        assert deep["details"]["errors"][0]["field"].startswith("input.0.0")
        assert "nested deeper than 32 levels" in deep["message"]
        long = assert_error(api.post(SUBMIT, content=body(json.dumps({"topic": "x" * 300_000})), headers=JSON), 400)
        assert long["details"]["errors"][0]["field"] == "input.topic"
        assert api.post(SUBMIT, content=body(json.dumps({"topic": "fits"})), headers=JSON).status_code == 201


# ------------------------------------------------------------------ item 2: poison rows


POISON = [
    ('{"topic": "\\ud800"}', "input.topic", "lone UTF-16 surrogate"),
    ('{"topic": "x", "extra": {"\\udfff": 1}}', "input.extra", "object key"),
    ('{"topic": "x", "n": NaN}', "input.n", "NaN and Infinity"),
    ('{"topic": "x", "n": [1, -Infinity]}', "input.n.1", "NaN and Infinity"),
    ('{"topic": "x", "n": 1e999}', "input.n", "NaN and Infinity"),
    ('{"topic": "a\\u0000b"}', "input.topic", "NUL"),
    ('{"topic": "x", "deep": ' + nested(300) + "}", "input.deep.0", "nested deeper"),
]


def _insert_bad_rows(ecl: Ecl) -> list[str]:
    """Rows as an older server stored them, before such input was refused."""
    deep = "[" * 600 + "1" + "]" * 600
    too_deep = "[" * 5000 + "]" * 5000
    rows = {
        "bad-surrogate": '{"topic": "\\ud800"}',
        "bad-nan": '{"topic": "x", "n": NaN}',
        "bad-deep": '{"topic": "x", "deep": ' + deep + "}",
        "bad-too-deep": '{"topic": "x", "deep": ' + too_deep + "}",
    }
    with sqlite3.connect(ecl.db) as conn:
        for wid, value in rows.items():
            conn.execute(
                "INSERT INTO workflows (id, definition_id, state, input, output, error, input_hash, "
                "revision_count, created_at, updated_at) VALUES (?, 'critique-revise', 'failed', ?, ?, ?, '', 0, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                (wid, value, value, '{"type": "X", "message": "\\ud800"}'),
            )
            conn.execute(
                "INSERT INTO step_executions (id, workflow_id, step_id, attempt, iteration, state, input, output, "
                "started_at) VALUES (?, ?, 'generate', 1, 0, 'completed', ?, ?, '2026-01-01 00:00:00')",
                (f"{wid}-s", wid, value, value),
            )
    return list(rows)


def test_poison_input_is_refused_and_a_stored_bad_row_breaks_no_reader(ecl: Ecl, server: Server) -> None:
    with server.client() as api:
        good = submit(api, "good")
        for raw, field_name, message in POISON:
            error = assert_error(api.post(SUBMIT, content=body(raw), headers=JSON), 400, "VALIDATION_ERROR")
            assert error["details"]["errors"][0]["field"].startswith(field_name), (raw[:60], error)
            assert message in error["details"]["errors"][0]["message"], (raw[:60], error)
        bad = _insert_bad_rows(ecl)
        listed = all_ids(api)
        assert set(bad) | {good} <= set(listed)
        for wid in [*bad, good]:
            for path in (f"/workflows/{wid}", f"/workflows/{wid}/steps"):
                response = api.get(path)
                assert response.status_code == 200, (path, response.text[:300])
        assert api.get("/workflows/bad-surrogate").json()["input"] == {"topic": "\ufffd"}
        assert api.get("/workflows/bad-nan").json()["input"] == {"topic": "x", "n": None}
        retry = api.post(
            SUBMIT, json={"definition_id": "critique-revise", "input": {"topic": "x"}, "workflow_id": "bad-nan"}
        )
        assert retry.status_code == 409  # the stored row answers; no 500
    for args in (
        ["list"],
        ["list", "--format", "json"],
        *(["status", wid] for wid in bad),
        ["status", "bad-deep", "--format", "json"],
    ):
        done = ecl.run(*args, timeout=600)
        assert "Traceback" not in done.stderr, (args, done.stderr[-2000:])
        assert done.returncode in (0, 10), (args, done.returncode, done.stderr[-500:])  # 10: the workflow failed
    assert set(bad) <= {w["id"] for w in listed_json(ecl)["items"]}


# ------------------------------------------------------------------ item 8: the auth surface


def test_docs_and_the_schema_need_the_key_and_401_comes_before_405(server: Server) -> None:
    with server.client(None) as anonymous, server.client() as api:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert_error(anonymous.get(path), 401, "UNAUTHORIZED")
            assert api.get(path).status_code == 200, path
        for method, path in (
            ("PUT", "/workflows"),
            ("PATCH", "/workflows/x"),
            ("DELETE", "/definitions"),
            ("GET", "/no/such"),
        ):
            assert_error(anonymous.request(method, path), 401, "UNAUTHORIZED")
        assert_error(api.put("/workflows"), 405, "METHOD_NOT_ALLOWED")
        assert anonymous.get("/health/live").status_code == 200


# ------------------------------------------------------------------ item 11: the contract


@dataclass
class GeneratedClient:
    """Drives the API by the operations of the published spec, parsing every answer into the
    model that the spec names for its status (models generated by datamodel-code-generator)."""

    spec: dict[str, Any]
    models: Any
    http: httpx.Client
    calls: list[tuple[str, int]] = field(default_factory=list)

    def _operation(self, operation_id: str) -> tuple[str, str, dict[str, Any]]:
        for path, operations in self.spec["paths"].items():
            for method, operation in operations.items():
                if operation.get("operationId") == operation_id:
                    return method, path, operation
        raise AssertionError(f"no operation {operation_id}")

    def call(self, operation_id: str, *, path: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, Any]:
        method, template, operation = self._operation(operation_id)
        response = self.http.request(method, template.format(**(path or {})), **kwargs)
        status = str(response.status_code)
        assert status in operation["responses"], f"{operation_id} answered {status}, not in the spec"
        self.calls.append((operation_id, response.status_code))
        schema = operation["responses"][status].get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return response.status_code, response.content
        return response.status_code, self._parse(schema, response.json())

    def _parse(self, schema: dict[str, Any], data: Any) -> Any:
        if "$ref" in schema:
            return getattr(self.models, schema["$ref"].rsplit("/", 1)[1]).model_validate(data)
        if schema.get("type") == "array" and "$ref" in schema.get("items", {}):
            return [self._parse(schema["items"], item) for item in data]
        return data


@pytest.fixture
def generated_models(tmp_path: Path) -> Iterator[Any]:
    spec = Path(__file__).parents[2] / "docs/api/openapi.yaml"
    out = tmp_path / "ecl_api_models.py"
    codegen = Path(sys.executable).with_name("datamodel-codegen")
    done = subprocess.run(
        [str(codegen), "--input", str(spec), "--input-file-type", "openapi", "--output", str(out),
         "--output-model-type", "pydantic_v2.BaseModel", "--disable-timestamp"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    module_spec = importlib.util.spec_from_file_location("ecl_api_models", out)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["ecl_api_models"] = module  # pydantic resolves the annotations through it
    try:
        module_spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["ecl_api_models"]


def test_a_client_generated_from_the_spec_drives_the_api(server: Server, generated_models: Any) -> None:
    spec = yaml.safe_load((Path(__file__).parents[2] / "docs/api/openapi.yaml").read_text())
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    for operations in spec["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
            assert "400" in operation["responses"]
    m = generated_models
    with server.client() as http, server.client(None) as anonymous:
        client = GeneratedClient(spec, m, http)
        submit_body = m.SubmitIn(definition_id="critique-revise", input={"topic": "typed"}, workflow_id="typed-1")
        status, created = client.call(
            "submit_workflows_post", json=submit_body.model_dump(mode="json", exclude_none=True)
        )
        assert status == 201 and isinstance(created, m.WorkflowOut) and created.id == "typed-1"
        status, again = client.call(
            "submit_workflows_post", json=submit_body.model_dump(mode="json", exclude_none=True)
        )
        assert status == 200 and again.id == "typed-1"
        other = submit_body.model_copy(update={"input": {"topic": "other"}})
        status, conflict = client.call("submit_workflows_post", json=other.model_dump(mode="json", exclude_none=True))
        assert status == 409 and isinstance(conflict, m.ErrorBody) and conflict.error.code == "CONFLICT"
        status, page = client.call("list_workflows_workflows_get", params={"definition_id": "critique-revise"})
        assert status == 200 and isinstance(page, m.WorkflowList)
        assert "typed-1" in [w.id for w in page.items]
        status, none = client.call("list_workflows_workflows_get", params={"definition_id": "no-such-definition"})
        assert status == 200 and none.items == []  # the filter is applied, not ignored
        status, unknown = client.call("list_workflows_workflows_get", params={"definition": "critique-revise"})
        assert status == 400 and isinstance(unknown, m.ValidationErrorBody)
        assert unknown.error.code == "VALIDATION_ERROR" and unknown.error.details.errors[0].field == "definition"
        status, bad = client.call("submit_workflows_post", json={"definition_id": "", "input": []})
        assert status == 400 and {e.field for e in bad.error.details.errors} == {"definition_id", "input"}
        status, missing = client.call("get_workflow_workflows__workflow_id__get", path={"workflow_id": "nope"})
        assert status == 404 and missing.error.code == "WORKFLOW_NOT_FOUND"
        status, large = client.call("submit_workflows_post", content=b"[" + b" " * (2 * MB) + b"]", headers=JSON)
        assert status == 413 and large.error.code == "PAYLOAD_TOO_LARGE"
        status, steps = client.call("list_steps_workflows__workflow_id__steps_get", path={"workflow_id": "typed-1"})
        assert status == 200 and all(isinstance(s, m.StepOut) for s in steps)
        status, definitions = client.call("list_definitions_definitions_get")
        assert status == 200 and "critique-revise" in [d.id for d in definitions]
        client.http = anonymous
        status, denied = client.call("list_workflows_workflows_get")
        assert status == 401 and denied.error.code == "UNAUTHORIZED"
        status, live = client.call("live_health_live_get")
        assert status == 200 and live.status.value == "ok"


# ------------------------------------------------------------------ the bad-input suite (API)


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the documented answer."""

    name: str
    method: str
    path: str
    content: bytes | None = None
    status: int = 400
    code: str | None = "VALIDATION_ERROR"
    key: bool = True
    params: dict[str, str] | None = None


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"definition_id": "critique-revise", "input": {"topic": "'
    for _ in range(total // MB):
        yield b"y" * MB
    yield b'"}}'


HOSTILE = [
    Hostile("oversized", "POST", SUBMIT, b'{"input": "' + b"x" * (3 * MB) + b'"}', 413, "PAYLOAD_TOO_LARGE"),
    Hostile("oversized, no key", "POST", SUBMIT, b"x" * (3 * MB), 401, "UNAUTHORIZED", key=False),
    Hostile(
        "oversized signal",
        "POST",
        "/workflows/w/signal",
        b'{"feedback": "' + b"x" * (2 * MB) + b'"}',
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    Hostile("deep 40", "POST", SUBMIT, body(nested(40))),
    Hostile("deep 100k", "POST", SUBMIT, body(nested(100_000))),
    Hostile("deep objects", "POST", SUBMIT, body('{"a":' * 500 + "1" + "}" * 500)),
    Hostile("invalid UTF-8", "POST", SUBMIT, b'{"definition_id": "critique-revise", "input": {"topic": "\xff\xfe"}}'),
    Hostile("overlong UTF-8", "POST", SUBMIT, b'{"definition_id": "critique-revise", "input": {"topic": "\xc0\xaf"}}'),
    Hostile("lone surrogate", "POST", SUBMIT, body('{"topic": "\\udc00"}')),
    Hostile("surrogate key", "POST", SUBMIT, body('{"\\ud800": "x"}')),
    Hostile("surrogate in signal", "POST", "/workflows/w/signal", b'{"decision": "revise", "feedback": "\\ud800"}'),
    Hostile("NUL", "POST", SUBMIT, body('{"topic": "\\u0000"}')),
    Hostile("NUL in id", "POST", SUBMIT, body('{"topic": "x"}', workflow_id="a\x00b")),
    Hostile("NaN", "POST", SUBMIT, body('{"topic": "x", "n": NaN}')),
    Hostile("Infinity", "POST", SUBMIT, body('{"topic": "x", "n": Infinity}')),
    Hostile("1e999", "POST", SUBMIT, body('{"topic": "x", "n": -1e999}')),
    Hostile("huge integer", "POST", SUBMIT, body('{"topic": "x", "n": ' + "9" * 30 + "}")),
    Hostile("5000-digit integer", "POST", SUBMIT, body('{"topic": "x", "n": ' + "9" * 5000 + "}")),
    Hostile("long string", "POST", SUBMIT, body(json.dumps({"topic": "x" * 300_000}))),
    Hostile("not JSON", "POST", SUBMIT, b"{definition_id: critique-revise"),
    Hostile("empty body", "POST", SUBMIT, b""),
    Hostile("wrong type: input", "POST", SUBMIT, body("[1, 2]")),
    Hostile("wrong type: definition", "POST", SUBMIT, b'{"definition_id": 7, "input": {}}'),
    Hostile("wrong type: body", "POST", SUBMIT, b'"just a string"'),
    Hostile("wrong type: signal", "POST", "/workflows/w/signal", b'{"decision": ["approve"]}'),
    Hostile("path-like workflow_id", "POST", SUBMIT, body('{"topic": "x"}', workflow_id="../../etc/passwd")),
    Hostile("long workflow_id", "POST", SUBMIT, body('{"topic": "x"}', workflow_id="w" * 500)),
    Hostile("unknown field", "POST", SUBMIT, body('{"topic": "x"}', owner="me")),
    Hostile("path-like id", "GET", "/workflows/..%2F..%2Fetc%2Fpasswd", status=404, code=None),
    Hostile("dot-dot id", "GET", "/workflows/%2e%2e/steps", status=404, code=None),
    Hostile("NUL in path", "GET", "/workflows/a%00b", status=404, code=None),
    Hostile("invalid UTF-8 in path", "GET", "/workflows/%ff%fe", status=404, code=None),
    Hostile("surrogate in path", "GET", "/workflows/%ed%a0%80", status=404, code=None),
    Hostile("path-like artifact", "GET", "/workflows/w/artifacts/..%2F..%2Fsecret", status=404, code=None),
    Hostile("path-like definition", "GET", "/definitions/..%2F..%2Fetc", status=404, code=None),
    Hostile("huge limit", "GET", "/workflows", params={"limit": "9" * 40}),
    Hostile("NaN limit", "GET", "/workflows", params={"limit": "NaN"}),
    Hostile("NUL in query", "GET", "/workflows", params={"definition_id": "a\x00b"}),
    Hostile("bad cursor", "GET", "/workflows", params={"cursor": "../../etc/passwd"}),
    Hostile("unknown parameter", "GET", "/workflows", params={"definition": "critique-revise"}),
    Hostile("unknown method", "PATCH", "/workflows", status=405, code="METHOD_NOT_ALLOWED"),
    Hostile("unknown method, no key", "PATCH", "/workflows", status=401, code="UNAUTHORIZED", key=False),
]


def test_bad_input_suite_api(server: Server) -> None:
    """Every hostile request gets its documented 4xx and the one error body; the server logs
    no traceback, its memory grows by less than 20 MB and every earlier workflow is listable."""
    with server.client() as api, server.client(None) as anonymous:
        earlier = [submit(api, f"before {i}") for i in range(3)]
        before = rss(server)
        failures: list[str] = []
        for _round in range(2):  # twice: memory that a repeated attack keeps would show
            for case in HOSTILE:
                client = api if case.key else anonymous
                try:
                    headers = JSON if case.content is not None else None
                    response = client.request(
                        case.method, case.path, content=case.content, params=case.params, headers=headers
                    )
                    assert_error(response, case.status, case.code)
                except AssertionError as exc:
                    failures.append(f"{case.name}: {exc}")
        streamed = api.post(SUBMIT, content=_chunks(8 * MB), headers=JSON)
        assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")
        grown = rss(server) - before
        assert not failures, "\n".join(failures)
        assert grown < 20 * MB, f"server RSS grew by {grown / MB:.1f} MB"
        assert set(earlier) <= set(all_ids(api))
        for wid in earlier:
            assert api.get(f"/workflows/{wid}").status_code == 200
    logs = server.stop()
    assert "Traceback" not in logs, logs[-3000:]


# ------------------------------------------------------------------ item 4's part: PostgreSQL


def test_nul_and_surrogates_are_400_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    from tests.db_fixtures import fresh_pg

    ecl = Ecl(tmp_path, "http://127.0.0.1:9")
    env = {"ECL_DATABASE_URL": fresh_pg(pg_url)}
    assert ecl.run("migrate", timeout=600, **env).returncode == 0
    server = Server(ecl, ECL_API_KEY=KEY, ECL_LLM_PROVIDER="mock", **env)
    try:
        server.start()
        with server.client() as api:
            good = submit(api, "pg")
            for raw in ('{"topic": "a\\u0000b"}', '{"topic": "\\ud800"}', '{"\\u0000": 1, "topic": "x"}'):
                assert_error(api.post(SUBMIT, content=body(raw), headers=JSON), 400, "VALIDATION_ERROR")
            assert_error(api.post(SUBMIT, content=body('{"topic": "x"}', workflow_id="a\x00b"), headers=JSON), 400)
            assert_error(api.get("/workflows", params={"definition_id": "a\x00b"}), 400, "VALIDATION_ERROR")
            assert_error(api.get("/workflows/a%00b"), 404)
            assert_error(api.post("/workflows/a%00b/signal", json={"decision": "approve"}), 404)
            assert good in all_ids(api)
    finally:
        logs = server.stop()
    assert "Traceback" not in logs, logs[-3000:]


# ------------------------------------------------------------------ the bad-input suite (CLI)


@dataclass(frozen=True)
class HostileCli:
    """One hostile command line and its documented exit code."""

    name: str
    args: list[str | bytes]
    exit_code: int = 4
    file: bytes | None = None  # written to input.json, passed as --input-file


CLI_HOSTILE = [
    HostileCli("NaN", ["run", "critique-revise", "--input", '{"topic": "x", "n": NaN}']),
    HostileCli("1e999", ["run", "critique-revise", "--input", '{"topic": "x", "n": 1e999}']),
    HostileCli("huge integer", ["run", "critique-revise", "--input", '{"topic": "x", "n": ' + "9" * 5000 + "}"]),
    HostileCli("lone surrogate", ["run", "critique-revise", "--input", '{"topic": "\\ud800"}']),
    HostileCli("NUL", ["run", "critique-revise", "--input", '{"topic": "\\u0000"}']),
    HostileCli("undecodable --topic", ["run", "critique-revise", "--topic", b"caf\xe9"]),
    HostileCli("deep", ["run", "critique-revise", "--input", '{"topic": "x", "d": ' + nested(100) + "}"]),
    HostileCli(
        "deep 100k file", ["run", "critique-revise"], file=b'{"topic": "x", "d": ' + nested(100_000).encode() + b"}"
    ),
    HostileCli("invalid UTF-8 file", ["run", "critique-revise"], file=b'{"topic": "\xff\xfe"}'),
    HostileCli("NUL byte file", ["run", "critique-revise"], file=b'{"topic": "a\x00b"}'),
    HostileCli("wrong type", ["run", "critique-revise", "--input", "[1, 2]"]),
    HostileCli("not JSON", ["run", "critique-revise", "--input", "{topic"]),
    HostileCli("path-like id", ["status", "../../etc/passwd"], exit_code=3),
    HostileCli("surrogate signal", ["signal", "some-id", "revise", "--feedback", b"\xed\xa0\x80"]),
    HostileCli("huge limit", ["list", "--limit", "9" * 40]),
    HostileCli("bad cursor", ["list", "--cursor", "../../etc"]),
]


def test_bad_input_suite_cli(ecl: Ecl) -> None:
    """Every hostile command line exits with its documented code and one line on stderr, and
    every earlier workflow is still listed."""
    earlier = []
    for i in range(2):
        done = ecl.run("run", "critique-revise", "--topic", f"b{i}", "--llm", "mock", "--format", "json", timeout=600)
        assert done.returncode == 0, done.stderr
        earlier.append(json.loads(done.stdout)["workflow_id"])
    failures: list[str] = []
    for case in CLI_HOSTILE:
        args = list(case.args)
        if case.file is not None:
            path = ecl.tmp / "input.json"
            path.write_bytes(case.file)
            args += ["--input-file", str(path)]
        if args[0] == "run":
            args += ["--llm", "mock"]
        done = subprocess.run(
            [str(Path(sys.executable).with_name("ecl")), *args],
            env=ecl.env(),
            cwd=ecl.tmp,
            capture_output=True,
            timeout=600,
            check=False,
        )
        err = done.stderr.decode("utf-8", "replace")
        lines = [line for line in err.splitlines() if line.strip()]
        if done.returncode != case.exit_code or "Traceback" in err or len(lines) != 1:
            failures.append(f"{case.name}: exit {done.returncode} (want {case.exit_code}): {err[-400:]!r}")
        elif not lines[0].startswith("error"):
            failures.append(f"{case.name}: {lines[0]!r}")
    assert not failures, "\n".join(failures)
    assert set(earlier) <= {w["id"] for w in listed_json(ecl)["items"]}
    assert ecl.run("list", timeout=600).returncode == 0
