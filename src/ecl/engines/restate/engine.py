"""Driving ECL workflows on a Restate server through its ingress and admin APIs.

* submit: ``POST {ingress}/EclWorkflow/{id}/run/send`` (a Restate workflow runs once per
  key, so a second submission with the same id attaches to the first);
* signal: the ``signal`` shared handler; status: the ``status`` shared handler plus the
  invocation's row in the admin API's ``sys_invocation`` table;
* cancel: ``PATCH {admin}/invocations/{invocation_id}/cancel``;
* result: ``GET {ingress}/restate/workflow/EclWorkflow/{id}/attach``, falling back to the
  ``workflows`` row once Restate has forgotten a finished workflow (after its retention).
* run (submit and wait): ``POST {ingress}/EclWorkflow/{id}/run``, one synchronous call that
  answers with the result (then as result, when it does not).

The ``workflows`` row is created here at submission, so the ECL database shows the
workflow at once; the endpoint keeps it up to date.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from ecl.core.durable import Admission, JsonValue, OwnerWait
from ecl.core.errors import EngineError, NonDeterminismError
from ecl.core.ids import new_workflow_id, parse_workflow_id
from ecl.core.records import StateChange
from ecl.core.results import WorkflowResult
from ecl.core.rules import (
    CANCELLED_ERROR,
    HasInputModel,
    check_same_submission,
    check_takes_signals,
    result_from_stored,
    submission_hash,
    validate_input,
)
from ecl.core.state import WorkflowState
from ecl.engines.restate.service import SERVICE_NAME
from ecl.observability.tracing import link_workflow, signal_span, submit_span
from ecl.store.database import WriterThread
from ecl.store.progress import cancelled_result_from_records
from ecl.store.recorder import SqlRecorder
from ecl.store.repositories import WorkflowRepository, insert_workflow, new_workflow_values

__all__ = ["RestateEngine"]

_UNAVAILABLE_WAIT = 10.0
_HTTP1_CALLS = 8
"""Up to this many requests in flight go over HTTP/1.1 (cleartext only), the rest over HTTP/2."""


def _mismatch(invocation: dict[str, Any]) -> bool:
    """Whether Restate retries the invocation because the code diverged from its journal."""
    return str(invocation.get("last_failure") or "").startswith("[570")


def _non_determinism(workflow_id: str, invocation: dict[str, Any]) -> NonDeterminismError:
    failure = str(invocation.get("last_failure") or "")
    where = re.search(r"index '(\d+)'", failure)
    names = re.search(r"name: (.*) != (.*)", failure)
    step = str(invocation.get("last_failure_related_command_name") or (names.group(2) if names else ""))
    return NonDeterminismError(
        f"workflow {workflow_id}: the code no longer matches its journal at {step!r}; Restate keeps "
        f"retrying it (`ecl cancel {workflow_id}` ends it). Restate: {failure.splitlines()[0] if failure else ''}",
        workflow_id=workflow_id,
        position=int(where.group(1)) if where else 0,
        expected=names.group(1).strip() if names else "",
        actual=names.group(2).strip() if names else step,
    )


def _refused(response: httpx.Response) -> EngineError:
    return EngineError(
        f"Restate refused the workflow: HTTP {response.status_code} {response.text[:200]}", engine="restate"
    )


class RestateEngine:
    """:class:`~ecl.core.Engine` over HTTP to Restate; records land in ECL's database."""

    name = "restate"

    def __init__(
        self,
        ingress_url: str,
        admin_url: str,
        workflows: WorkflowRepository,
        *,
        known_definitions: Callable[[str], HasInputModel] | None = None,
        timeout: float = 600.0,
        poll_seconds: float = 0.5,
        attach_seconds: float = 30.0,
        writer: Engine | None = None,
    ) -> None:
        self.ingress = ingress_url.rstrip("/")
        self.admin = admin_url.rstrip("/")
        self.workflows = workflows
        self._known = known_definitions
        self._records = SqlRecorder(workflows.db)
        self._poll = poll_seconds
        self._attach_seconds = attach_seconds
        # HTTP/2 to the ingress: every call one stream on one connection. Over HTTP/1.1 each
        # waiting call holds a connection of its own, and with hundreds of workflows waiting
        # at once httpx's pool spends more CPU than the calls (1,000 concurrent workflows:
        # 24.6 s over HTTP/1.1, 12.7 s over HTTP/2; bench/restate_raw.py --concurrent 1000).
        # Restate's ingress speaks cleartext HTTP/2 (prior knowledge); over TLS it is
        # negotiated, so a proxy that speaks only HTTP/1.1 still works there.
        cleartext = self.ingress.startswith("http://")
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0), http1=not cleartext, http2=True)
        # While few calls are in flight (`ecl run`, a few submissions), each goes over HTTP/1.1
        # on a keep-alive connection of its own instead: httpx's HTTP/1.1 costs less CPU per
        # call than its pure-Python HTTP/2 (RestateEngine.run of a 3-step workflow: 4.1 ms of
        # client CPU over HTTP/2, 3.6 over HTTP/1.1; bench/restate_raw.py). At most
        # _HTTP1_CALLS of them, so none ever waits for a connection of that pool.
        self._http1 = (
            httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=5.0),
                limits=httpx.Limits(max_connections=_HTTP1_CALLS, max_keepalive_connections=_HTTP1_CALLS),
            )
            if cleartext
            else None
        )
        self._calls = 0  # requests in flight, over either client
        # With a sync ``writer`` a submission's row is one insert on a writer thread (one hop,
        # the database's lock held only for the statement), not an async session whose lock is
        # held across several turns of a busy event loop: with many submissions at once on
        # SQLite those made the endpoint's writes wait past the busy timeout.
        self._writer = WriterThread(writer, name="ecl-submit") if writer is not None else None

    async def _insert(
        self, workflow_id: str, definition_id: str, input: Any, *, input_hash: str, trace_context: str | None
    ) -> None:
        if self._writer is None:
            await self.workflows.insert(
                workflow_id, definition_id, input, input_hash=input_hash, trace_context=trace_context
            )
            return
        write = insert_workflow(
            new_workflow_values(workflow_id, definition_id, input, input_hash=input_hash, trace_context=trace_context)
        )
        await self._writer.run(lambda conn: conn.execute(*write))

    async def _request(
        self, method: str, url: str, body: Any = None, *, timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        """One request; 502/503/504 (a server still starting its partitions) are retried ~10 s.

        With a ``timeout`` of its own, running out of it raises ``httpx.TimeoutException``
        (the caller decides what then); any other failure is an :class:`EngineError`.
        """
        deadline = asyncio.get_running_loop().time() + _UNAVAILABLE_WAIT
        while True:
            try:
                # The admin query API answers in Arrow unless asked for JSON.
                response = await self._call(method, url, body, timeout)
            except httpx.HTTPError as exc:
                if timeout is not None and isinstance(exc, httpx.TimeoutException):
                    raise
                where = self.admin if url.startswith(self.admin) else self.ingress
                raise EngineError(
                    f"cannot reach Restate at {where}: {type(exc).__name__}; is it running (ecl dev)?",
                    engine="restate",
                ) from exc
            if response.status_code not in (502, 503, 504) or asyncio.get_running_loop().time() > deadline:
                return response
            await asyncio.sleep(0.2)

    async def _call(
        self, method: str, url: str, body: Any = None, timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        """One request: over HTTP/1.1 while fewer than :data:`_HTTP1_CALLS` are in flight, else HTTP/2."""
        client = self._http1 if self._http1 is not None and self._calls < _HTTP1_CALLS else self._http
        self._calls += 1
        try:
            return await client.request(
                method,
                url,
                json=body,
                headers={"accept": "application/json"},
                timeout=timeout if timeout is not None else self._http.timeout,
            )
        finally:
            self._calls -= 1

    async def reachable(self) -> bool:
        """Whether Restate's admin API answers its health check."""
        try:
            response = await self._http.get(f"{self.admin}/health", timeout=httpx.Timeout(5.0))
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def submit(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        start: bool = True,
    ) -> str:
        """Record the workflow and start it on Restate (idempotent on ``workflow_id``; it
        starts whatever ``start`` says: the Restate endpoint, not this process, runs it).

        The input is checked against the definition's input model first (with
        ``known_definitions``), as on the embedded engine.
        """
        wid, _created = await self._admit(definition_id, input, workflow_id)
        return wid

    async def admit(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        start: bool = True,
    ) -> Admission:
        """Like :meth:`submit` (``start`` as there); also says whether this call created the
        workflow (of many concurrent identical submissions exactly one did: the API answers it
        201, the rest 200) and gives its row."""
        wid, created = await self._admit(definition_id, input, workflow_id)
        # The row as it is once Restate has it (its endpoint may have started the run).
        return Admission(wid, created=created, row=(await self.workflows.get(wid)).model_dump())

    async def _admit(
        self, definition_id: str, input: dict[str, JsonValue], workflow_id: str | None
    ) -> tuple[str, bool]:
        """Record the workflow and send it to Restate: its id and whether this call created it."""
        wid, created, body = await self._record(definition_id, input, workflow_id)
        await self._send(wid, body)
        return wid, created

    async def _record(
        self, definition_id: str, input: dict[str, JsonValue], workflow_id: str | None
    ) -> tuple[str, bool, dict[str, Any]]:
        """Check and record the workflow: its id, whether this call created it, and the
        request that starts it on Restate."""
        validate_input(definition_id, self._known(definition_id).input_model if self._known else None, input)
        wid = parse_workflow_id(workflow_id) if workflow_id else new_workflow_id()
        digest = submission_hash(definition_id, input)
        created = False
        # A new id has no row yet: only a given one is looked up first.
        existing = await self.workflows.find(wid) if workflow_id else None
        trace_context = None
        if existing is None:
            # The trace every run of the workflow continues: in its row and its Restate request.
            trace_context = submit_span(wid, definition_id)
            try:
                await self._insert(wid, definition_id, input, input_hash=digest, trace_context=trace_context)
                created = True
            except IntegrityError:  # a concurrent submission of the same id created it first
                existing = await self.workflows.get(wid)
        if existing is not None:
            check_same_submission(
                wid,
                definition_id=definition_id,
                digest=digest,
                stored_definition_id=existing.definition_id,
                stored_digest=existing.input_hash,
            )
            trace_context = existing.trace_context
        body: dict[str, Any] = {"definition_id": definition_id, "input": input}
        if trace_context is not None:
            body["trace"] = trace_context
        return wid, created, body

    async def _send(self, wid: str, body: dict[str, Any]) -> None:
        """Start the workflow on Restate without waiting for it (a second time: a no-op)."""
        response = await self._request("POST", f"{self.ingress}/{SERVICE_NAME}/{wid}/run/send", body)
        if response.status_code not in (200, 202, 409):
            raise _refused(response)

    async def run(
        self,
        definition_id: str,
        input: dict[str, JsonValue],
        workflow_id: str | None = None,
        *,
        on_submitted: Callable[[str], None] | None = None,
        on_wait: Callable[[OwnerWait], Awaitable[None] | None] | None = None,
    ) -> WorkflowResult:
        """Record the workflow and run it with one synchronous call, ``POST
        {ingress}/EclWorkflow/{id}/run``, which answers with the result: one round trip where
        :meth:`submit` and :meth:`result` take two (send, then attach).

        Exactly once all the same: Restate runs a workflow once per id, and a call for an id it
        has already (a resubmission) answers 409, then the workflow is attached to as
        :meth:`result` does. A call still unanswered after ``attach_seconds`` (a workflow
        waiting for a signal) is sent as a submission (a no-op if Restate has it) and waited
        for as :meth:`result` does, which tells a workflow stuck on a journal mismatch.
        """
        wid, _created, body = await self._record(definition_id, input, workflow_id)
        if on_submitted is not None:
            on_submitted(wid)
        url = f"{self.ingress}/{SERVICE_NAME}/{wid}/run"
        try:
            response = await self._request("POST", url, body, timeout=httpx.Timeout(self._attach_seconds, connect=5.0))
        except httpx.TimeoutException:
            await self._send(wid, body)
            return await self.result(wid)
        if response.status_code == 200:
            return WorkflowResult.model_validate(response.json())
        # Anything the invocation answered (a cancellation, a failure) or "already invoked":
        # Restate has the workflow, and result() reads its end as it does after a submit.
        if response.status_code != 409 and "x-restate-id" not in response.headers:
            raise _refused(response)
        return await self.result(wid)

    async def signal(self, workflow_id: str, name: str, payload: JsonValue) -> None:
        """Resolve a durable promise through the ``signal`` shared handler (an ended
        workflow takes no signals: :class:`~ecl.core.ConflictError`)."""
        record = await self.workflows.get(workflow_id)
        check_takes_signals(workflow_id, record.state)
        with signal_span(workflow_id, name) as span:  # in the sender's trace, linked to the workflow's
            link_workflow(span, record.trace_context)
            response = await self._request(
                "POST", f"{self.ingress}/{SERVICE_NAME}/{workflow_id}/signal", {"name": name, "payload": payload}
            )
        if response.status_code != 200:
            raise EngineError(f"signal failed: HTTP {response.status_code} {response.text[:200]}", engine="restate")

    async def invocation(self, workflow_id: str) -> dict[str, Any] | None:
        """The ``sys_invocation`` row of the workflow's ``run`` (id, status, ...), if Restate has one."""
        key = parse_workflow_id(workflow_id)  # ids are restricted to safe characters
        query = (
            "SELECT id, status, created_at, modified_at, completion_result, completion_failure, "
            "last_failure, last_failure_related_command_name "
            f"FROM sys_invocation WHERE target_service_name = '{SERVICE_NAME}' "
            f"AND target_handler_name = 'run' AND target_service_key = '{key}'"
        )
        response = await self._request("POST", f"{self.admin}/query", {"query": query})
        if response.status_code != 200:
            raise EngineError(
                f"admin query failed: HTTP {response.status_code} {response.text[:200]}", engine="restate"
            )
        rows = response.json().get("rows", [])
        return dict(rows[0]) if rows else None

    async def invocation_id(self, workflow_id: str) -> str | None:
        """The Restate invocation id of the workflow's ``run``."""
        row = await self.invocation(workflow_id)
        return str(row["id"]) if row else None

    async def status(self, workflow_id: str) -> dict[str, Any]:
        """ECL's row, Restate's invocation and the workflow's durable state, together."""
        record = await self.workflows.get(workflow_id)
        invocation = await self.invocation(workflow_id)
        durable: dict[str, Any] | None = None
        response = await self._request("POST", f"{self.ingress}/{SERVICE_NAME}/{workflow_id}/status", None)
        if response.status_code == 200:
            durable = response.json()
        return {
            "workflow_id": workflow_id,
            "state": record.state.value,
            "revision_count": record.revision_count,
            "invocation": invocation,
            "durable_state": durable,
        }

    async def cancel(self, workflow_id: str) -> None:
        """Cancel the invocation on Restate and mark the workflow cancelled.

        An invocation stuck on a journal mismatch can never run its cancellation (its code no
        longer replays), so it is killed instead.
        """
        await self.workflows.get(workflow_id)
        invocation = await self.invocation(workflow_id)
        if invocation is not None:
            how = "kill" if _mismatch(invocation) else "cancel"
            response = await self._request("PATCH", f"{self.admin}/invocations/{invocation['id']}/{how}")
            if response.status_code >= 400 and response.status_code not in (404, 409):
                raise EngineError(f"cancel failed: HTTP {response.status_code} {response.text[:200]}", engine="restate")
        # One conditional write: when the service recorded its own end meanwhile (its
        # cancellation ran), that stands.
        # The stored result keeps the outputs, steps and tokens it had (from its records).
        stored = await self.workflows.get(workflow_id)
        async with self.workflows.db.connect() as conn:
            result = await conn.run_sync(cancelled_result_from_records, workflow_id, stored.definition_id)
        await self._records.workflow_state(
            StateChange(
                workflow_id,
                WorkflowState.CANCELLED,
                output=result.model_dump(mode="json"),
                error=dict(CANCELLED_ERROR),
                revision_count=result.revisions,
            )
        )

    async def result(self, workflow_id: str) -> WorkflowResult:
        """Attach to the workflow and wait for its result.

        Raises :class:`~ecl.core.NonDeterminismError` when Restate keeps retrying the workflow
        because its code no longer matches its journal.
        """
        url = f"{self.ingress}/restate/workflow/{SERVICE_NAME}/{workflow_id}/attach"
        while True:
            try:
                response = await self._call("GET", url, timeout=httpx.Timeout(self._attach_seconds, connect=5.0))
            except httpx.TimeoutException:
                invocation = await self.invocation(workflow_id)
                if invocation is not None and _mismatch(invocation):
                    raise _non_determinism(workflow_id, invocation) from None
                continue
            except httpx.HTTPError as exc:
                raise EngineError(
                    f"cannot reach Restate at {self.ingress}: {type(exc).__name__}", engine="restate"
                ) from exc
            if response.status_code == 200:
                return WorkflowResult.model_validate(response.json())
            record = await self.workflows.get(workflow_id)
            if record.state.is_terminal:
                return result_from_stored(
                    workflow_id=record.id,
                    definition_id=record.definition_id,
                    state=record.state,
                    output=record.output,
                    error=record.error,
                    revision_count=record.revision_count,
                )
            if 400 <= response.status_code < 500 and response.status_code not in (404, 409):
                raise EngineError(f"attach failed: HTTP {response.status_code} {response.text[:200]}", engine="restate")
            await asyncio.sleep(self._poll)

    async def resume(
        self,
        workflow_id: str,
        *,
        on_wait: Callable[[OwnerWait], Awaitable[None] | None] | None = None,
    ) -> WorkflowResult:
        """Restate runs (and resumes) the workflow itself: wait for its result."""
        return await self.result(workflow_id)

    async def run_worker(self, stop: asyncio.Event) -> None:
        """Nothing to run here (the Restate endpoint runs the workflows): wait for ``stop``."""
        await stop.wait()

    async def health(self) -> str:
        """``"ok"`` when Restate's admin API answers."""
        return "ok" if await self.reachable() else f"restate unreachable at {self.admin}"

    async def close(self) -> None:
        """Close the HTTP clients (and the writer thread)."""
        await self._http.aclose()
        if self._http1 is not None:
            await self._http1.aclose()
        if self._writer is not None:
            self._writer.close()
