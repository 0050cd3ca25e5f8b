"""One background loop per query: when to poll, how to retry, what to publish or drop.

Each query polls on its own interval, the first poll spread over the first seconds so a big
configuration does not burst. A poll fetches (retrying 5xx, timeouts and connection errors
with capped, jittered backoff inside the interval), waits out any 429 of its endpoint, renders
the answer off the event loop, and publishes it. A failed poll marks the query down and keeps
its last good series until they are older than its staleness bound.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .collectors.base import DecodeError, QueryJob
from .datadog import ApiError, DatadogClient, RateLimited
from .exposition import Rendered
from .ratebudget import next_slot
from .selfmetrics import QueryState, RateLimitView, SelfMetrics
from .settings import DEFAULT_ACCOUNT
from .snapshot import QueryKey, QuerySnapshot, SnapshotStore, prepare_snapshot

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Retries after a retryable failure wait BACKOFF_BASE * 2^attempt, capped, with full jitter.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
# The first polls of all queries are spread over at most this long after start-up.
STARTUP_SPREAD_SECONDS = 10.0
ERROR_REASONS = (
    "rate_limited",
    "rate_budget",
    "http_error",
    "server_error",
    "timeout",
    "connection_error",
    "too_large",
    "decode_error",
    "credentials",
)


@dataclass
class JobChanges:
    """What :meth:`Scheduler.apply` did, by query key."""

    added: list[QueryKey] = field(default_factory=list)
    changed: list[QueryKey] = field(default_factory=list)
    removed: list[QueryKey] = field(default_factory=list)
    unchanged: list[QueryKey] = field(default_factory=list)


class PollFailed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]."""
    return rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def startup_offset(key: QueryKey, interval: float) -> float:
    """A stable offset for a query's first poll, so restarts keep the same spread."""
    spread = min(interval, STARTUP_SPREAD_SECONDS)
    return (zlib.crc32(f"{key[0]}/{key[1]}".encode()) % 1000) / 1000 * spread


class Scheduler:
    """Owns the polling tasks; everything they produce goes to the store and self-metrics.

    Each job polls through the client of its account (``clients`` maps account names to
    clients; the owner keeps that mapping current across reloads). Rate-limit state and
    pacing live in the clients, so they are per account and endpoint: Datadog limits each
    organisation separately.
    """

    def __init__(
        self,
        clients: DatadogClient | Mapping[str, DatadogClient],
        store: SnapshotStore,
        metrics: SelfMetrics,
        *,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ):
        self.clients = clients if isinstance(clients, Mapping) else {DEFAULT_ACCOUNT: clients}
        self.store = store
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.jobs: dict[QueryKey, QueryJob] = {}
        self.states: dict[QueryKey, QueryState] = {}
        self._tasks: dict[QueryKey, asyncio.Task[None]] = {}
        # Publishing rebuilds the shared body; one at a time keeps every rebuild complete.
        self._publish_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, jobs: Iterable[QueryJob]) -> None:
        for job in jobs:
            self._add(job)
        self.store.set_order(self.jobs)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def apply(self, jobs: Iterable[QueryJob]) -> JobChanges:
        """Move to a new set of jobs (a reload) without disturbing the ones that stay.

        Jobs are compared with ``==`` (they are frozen values of their settings). An unchanged
        job keeps its task, schedule, data and state; a removed one stops and its series and
        self-metrics vanish; a changed one is removed and added again, so no series of its old
        shape outlives it; a new one starts like at start-up.
        """
        wanted = {(job.collector, job.name): job for job in jobs}
        changes = JobChanges()
        for key, job in self.jobs.items():
            if key not in wanted:
                changes.removed.append(key)
            elif wanted[key] != job:
                changes.changed.append(key)
            else:
                changes.unchanged.append(key)
        changes.added = [key for key in wanted if key not in self.jobs]
        for key in changes.removed + changes.changed:
            await self._remove(key)
        for key in changes.changed + changes.added:
            self._add(wanted[key])
        # Configuration order decides the order on /metrics and the landing page.
        self.jobs = {key: self.jobs[key] for key in wanted}
        self.states = {key: self.states[key] for key in wanted}
        self.store.set_order(wanted)
        return changes

    async def _remove(self, key: QueryKey) -> None:
        task = self._tasks.pop(key)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._locked(self.store.drop, key)
        del self.jobs[key]
        del self.states[key]
        self.metrics.forget_query(key[0], key[1], ERROR_REASONS)

    def _add(self, job: QueryJob) -> None:
        key = (job.collector, job.name)
        self.jobs[key] = job
        self.states[key] = QueryState(
            collector=job.collector,
            name=job.name,
            endpoint=job.endpoint,
            account=job.account,
            interval=job.interval,
            window=job.window,
        )
        self._tasks[key] = asyncio.create_task(self._run(key), name=f"poll {key[0]}/{key[1]}")

    # -- views for /metrics and the landing page ---------------------------------------------

    def query_states(self) -> list[QueryState]:
        return list(self.states.values())

    def rate_limit_views(self) -> list[RateLimitView]:
        offset = self.wall_clock() - time.monotonic()
        return [
            RateLimitView(
                account=account,
                endpoint=endpoint,
                limit=state.limit,
                remaining=state.remaining,
                period=state.period,
                blocked_until_unix=(
                    state.blocked_until + offset if state.blocked_until > time.monotonic() else None
                ),
            )
            for account, client in sorted(self.clients.items())
            for endpoint, state in sorted(client.rate_limits.items())
        ]

    def client_for(self, job: QueryJob) -> DatadogClient:
        return self.clients[job.account]

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self, key: QueryKey) -> None:
        job = self.jobs[key]
        await asyncio.sleep(startup_offset(key, job.interval))
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += job.interval
            await self.poll_once(key, deadline=next_at)
            now = loop.time()
            # A poll that overran its interval (long retries, 429 waits) skips the missed
            # ticks rather than firing them back to back.
            next_at = max(next_at, now)
            await asyncio.sleep(max(0.0, next_at - now))

    async def poll_once(self, key: QueryKey, deadline: float) -> None:
        """One poll: fetch, render, publish; on failure record it and maybe drop stale data."""
        job = self.jobs[key]
        state = self.states[key]
        started = time.monotonic()
        state.last_attempt = self.wall_clock()
        try:
            body = await self._fetch_with_retries(job, deadline)
            rendered, snapshot = await asyncio.to_thread(
                self._render, key, job, body, self.wall_clock()
            )
            await self._locked(self.store.publish, snapshot)
        except PollFailed as failure:
            self._record_failure(key, failure)
        else:
            state.up = True
            state.last_success = snapshot.published_at
            state.last_error = None
            state.series = snapshot.series
            state.serving_stale = False
            if rendered.dropped_rows:
                self._record_dropped_rows(key, rendered)
            log.debug(
                "poll succeeded",
                extra={"collector": key[0], "query": key[1], "series": snapshot.series},
            )
        finally:
            state.last_duration = time.monotonic() - started
        if not state.up:
            await self._drop_if_stale(key)

    async def _locked(self, change: Callable[[_T], object], argument: _T) -> None:
        """Run a store change in a worker thread, one at a time, to completion.

        A cancelled poll (stop, reload) must not leave its change running in the thread after
        the lock is released: it would race the next change (a removed query's data could
        come back). So the change is shielded and awaited even when the caller is cancelled.
        """
        async with self._publish_lock:
            future = asyncio.ensure_future(asyncio.to_thread(change, argument))
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                await future
                raise

    @staticmethod
    def _render(
        key: QueryKey, job: QueryJob, body: bytes, now: float
    ) -> tuple[Rendered, QuerySnapshot]:
        try:
            rendered = job.render(body)
        except DecodeError as exc:
            raise PollFailed("decode_error", str(exc)) from None
        return rendered, prepare_snapshot(key, rendered, now)

    def _record_dropped_rows(self, key: QueryKey, rendered: Rendered) -> None:
        self.metrics.dropped_rows.labels(key[0], key[1]).inc(rendered.dropped_rows)
        log.warning(
            "rows dropped: the query would exceed its max_series",
            extra={
                "collector": key[0],
                "query": key[1],
                "dropped_rows": rendered.dropped_rows,
                "series_kept": rendered.series,
            },
        )

    async def _fetch_with_retries(self, job: QueryJob, deadline: float) -> bytes:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            await self._wait_for_rate_limit(job, deadline)
            try:
                return await self.client_for(job).fetch(job.request(self.wall_clock()))
            except RateLimited:
                continue  # the next round waits for the reset, or gives up at the deadline
            except ApiError as exc:
                if exc.retryable:
                    delay = backoff_delay(attempt, self.rng)
                    if loop.time() + delay < deadline:
                        log.debug(
                            "retrying after error",
                            extra={"query": job.name, "error": str(exc), "delay": round(delay, 2)},
                        )
                        attempt += 1
                        await asyncio.sleep(delay)
                        continue
                raise PollFailed(exc.reason, str(exc)) from None

    async def _wait_for_rate_limit(self, job: QueryJob, deadline: float) -> None:
        state = self.client_for(job).rate_limit(job.endpoint)
        wait = state.blocked_until - time.monotonic()
        if wait > 0:
            if asyncio.get_running_loop().time() + wait >= deadline:
                raise PollFailed(
                    "rate_limited",
                    f"{job.endpoint}: rate limited by Datadog for another {wait:.0f}s; "
                    "poll skipped",
                )
            await asyncio.sleep(wait)
        await self._pace(job, deadline)

    async def _pace(self, job: QueryJob, deadline: float) -> None:
        """Wait for this call's share of a running-low budget (see ratebudget)."""
        state = self.client_for(job).rate_limit(job.endpoint)
        now = time.monotonic()
        slot = next_slot(now, state.free_at, state.available, state.limit, state.reset_at)
        wait = slot.at - now
        if wait > 0 and asyncio.get_running_loop().time() + wait >= deadline:
            raise PollFailed(
                "rate_budget",
                f"{job.endpoint}: {state.available} of {state.limit or '?'} calls left for "
                f"{(state.reset_at or now) - now:.0f}s; next free slot in {wait:.0f}s; "
                "poll skipped to stay under the rate limit",
            )
        state.free_at = slot.next_free
        if wait > 0:
            log.debug(
                "pacing a low rate-limit budget",
                extra={"query": job.name, "endpoint": job.endpoint, "wait": round(wait, 2)},
            )
            await asyncio.sleep(wait)

    def _record_failure(self, key: QueryKey, failure: PollFailed) -> None:
        state = self.states[key]
        state.up = False
        state.last_error = str(failure)
        self.metrics.poll_errors.labels(key[0], key[1], failure.reason).inc()
        log.warning(
            "poll failed",
            extra={
                "collector": key[0],
                "query": key[1],
                "reason": failure.reason,
                "error": str(failure),
            },
        )

    async def _drop_if_stale(self, key: QueryKey) -> None:
        job = self.jobs[key]
        state = self.states[key]
        snapshot = self.store.get(key)
        if snapshot is None:
            return
        age = self.wall_clock() - snapshot.published_at
        if age <= job.keep_stale_seconds:
            state.serving_stale = True
            return
        await self._locked(self.store.drop, key)
        state.series = 0
        state.serving_stale = False
        log.warning(
            "dropped stale series",
            extra={"collector": key[0], "query": key[1], "age_seconds": round(age)},
        )
