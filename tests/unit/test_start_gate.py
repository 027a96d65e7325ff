"""The start gate: submitted workflows start after the requests in hand, within a bound."""

from __future__ import annotations

import asyncio
import time

from ecl.engines.embedded import StartGate


async def test_nothing_waits_without_requests() -> None:
    gate = StartGate(5.0)
    await asyncio.wait_for(gate.turn(), 1)
    assert gate.held == 0


async def test_starts_wait_for_the_requests_then_go_a_few_per_turn_in_order() -> None:
    gate = StartGate(60.0, per_turn=3, settle=0.0)  # settle: its own test below
    gate.enter()
    gate.enter()
    started: list[int] = []

    async def run(i: int) -> None:
        await gate.turn()
        started.append(i)

    tasks = [asyncio.create_task(run(i)) for i in range(7)]
    await asyncio.sleep(0.05)
    assert started == []
    assert gate.held == 7
    gate.leave()
    await asyncio.sleep(0.05)
    assert started == []  # one request is still in hand
    gate.leave()
    for _ in range(100):  # turns of the loop until the first batch
        await asyncio.sleep(0)
        if started:
            break
    assert 0 < len(started) <= 3  # a batch per turn, not all at once
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert started == list(range(7))


async def test_requests_that_never_pause_do_not_starve_the_workflows() -> None:
    gate = StartGate(0.2)
    gate.enter()
    t0 = time.monotonic()
    await asyncio.wait_for(gate.turn(), 5)
    assert 0.15 <= time.monotonic() - t0 < 4


async def test_a_cancelled_start_is_skipped() -> None:
    gate = StartGate(60.0, per_turn=1)
    gate.enter()
    first = asyncio.create_task(gate.turn())
    second = asyncio.create_task(gate.turn())
    await asyncio.sleep(0.01)
    first.cancel()
    gate.leave()
    await asyncio.wait_for(second, 5)
    assert first.cancelled()


async def test_zero_delay_never_holds() -> None:
    gate = StartGate(0.0)
    gate.enter()
    await asyncio.wait_for(gate.turn(), 1)
    assert gate.held == 0


async def test_starts_wait_until_requests_stop_arriving_for_the_settle_time() -> None:
    """A burst's clients leave short gaps between requests: a gap is not the burst's end."""
    gate = StartGate(60.0, settle=0.05)
    gate.enter()
    started = asyncio.create_task(gate.turn())
    for _ in range(10):  # requests one after the other, a 10 ms gap between them
        gate.leave()
        await asyncio.sleep(0.01)
        assert not started.done()
        gate.enter()
    gate.leave()
    t0 = time.monotonic()
    await asyncio.wait_for(started, 5)
    assert time.monotonic() - t0 >= 0.04  # after the settle time, not at the first gap


async def test_overdue_starts_during_requests_go_a_batch_per_settle_time() -> None:
    gate = StartGate(0.05, per_turn=2, settle=0.1)
    gate.enter()  # requests go on: every start becomes overdue
    started: list[float] = []

    async def run() -> None:
        await gate.turn()
        started.append(time.monotonic())

    t0 = time.monotonic()
    tasks = [asyncio.create_task(run()) for _ in range(6)]
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    gate.leave()
    assert started[1] - t0 >= 0.04  # overdue, not at once
    assert started[-1] - started[0] >= 0.15  # three batches of two, 0.1 s apart
