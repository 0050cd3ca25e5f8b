"""One background loop per query: when to poll, how to retry, what to publish or drop.

Each query polls on its own interval, the first poll spread over the first seconds so a big
configuration does not burst. A poll fetches (retrying 5xx, timeouts and connection errors
with capped, jittered backoff inside the interval), waits out any 429 of its endpoint, renders
the answer off the event loop, and publishes it. A failed poll — for any reason, an
unexpected exception included — marks the query down and keeps its last good series until
they are older than its staleness bound.

Two things do not rely on the loops themselves: a supervisor (each loop task's done
callback) restarts a loop that ends anyway, with capped backoff; and a sweeper task checks
every query against the wall clock, so a query whose polls stop coming (hung, overrunning,
loop dead) is marked late and down, and its series dropped after ``stale_after``, without
waiting for a poll that may never finish. The scheduler is the one owner of the per-query
state: the loops write poll outcomes, the sweeper writes what the clock decides.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import traceback
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .collectors.base import DecodeError, QueryJob
from .config.schema import DEFAULT_ACCOUNT
from .datadog.budget import next_slot
from .datadog.client import ApiError, DatadogClient, RateLimited
from .exposition import Rendered
from .selfmetrics import QueryState, RateLimitView, SelfMetrics
from .snapshot import QueryKey, QuerySnapshot, SnapshotStore, prepare_snapshot

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_R = TypeVar("_R")

# Retries after a retryable failure wait BACKOFF_BASE * 2^attempt, capped, with full jitter.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
# The first polls of all queries are spread over at most this long after start-up.
STARTUP_SPREAD_SECONDS = 10.0
# A query none of whose polls finished for this many intervals is late (and down).
LATE_AFTER_INTERVALS = 2
# How often the sweeper checks every query against the clock.
SWEEP_INTERVAL_SECONDS = 1.0
# Longest text of an unexpected exception kept for the log line and the landing page.
MAX_ERROR_TEXT = 500
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
    "internal_error",
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


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff without jitter: ``base * 2^n`` seconds, at most ``cap``."""

    base: float
    cap: float

    def delay(self, attempt: int) -> float:
        # The exponent is bounded so a long streak cannot overflow the float conversion.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))


# A loop that ends is restarted after 1 s, then 2, 4, ... at most 60 s while it keeps ending
# before finishing a poll; never earlier than its next scheduled poll.
RESTART_BACKOFF = Backoff(base=1.0, cap=60.0)


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]."""
    return rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def startup_offset(key: QueryKey, interval: float) -> float:
    """A stable offset for a query's first poll, so restarts keep the same spread."""
    spread = min(interval, STARTUP_SPREAD_SECONDS)
    return (zlib.crc32(f"{key[0]}/{key[1]}".encode()) % 1000) / 1000 * spread


class Scheduler:
    """Owns the polling tasks, their supervisor and the staleness sweeper; everything they
    produce goes to the store and self-metrics.

    Each job polls through the client of its account (``clients`` maps account names to
    clients; the owner keeps that mapping current across reloads). Rate-limit state and
    pacing live in the clients, so they are per account and endpoint: Datadog limits each
    organisation separately.

    Time comes in through the constructor: ``wall_clock`` measures every age (last success,
    staleness, lateness), ``sleep`` is how a loop waits for its next poll, ``restart_backoff``
    paces the restarts of loops that end, and ``sweep_interval`` is how often the sweeper
    compares every query with the clock.
    """

    def __init__(
        self,
        clients: DatadogClient | Mapping[str, DatadogClient],
        store: SnapshotStore,
        metrics: SelfMetrics,
        *,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        restart_backoff: Backoff = RESTART_BACKOFF,
        sweep_interval: float = SWEEP_INTERVAL_SECONDS,
    ):
        self.clients = clients if isinstance(clients, Mapping) else {DEFAULT_ACCOUNT: clients}
        self.store = store
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.restart_backoff = restart_backoff
        self.sweep_interval = sweep_interval
        self.jobs: dict[QueryKey, QueryJob] = {}
        self.states: dict[QueryKey, QueryState] = {}
        self._tasks: dict[QueryKey, asyncio.Task[None]] = {}
        # Loop time of each query's next poll. Kept outside the loop so a restarted loop
        # resumes the schedule instead of polling early.
        self._due: dict[QueryKey, float] = {}
        # Restarts of a query's loop since it last finished a poll (the backoff exponent).
        self._restarts: dict[QueryKey, int] = {}
        self._in_flight: set[QueryKey] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # Publishing rebuilds the shared body; one at a time keeps every rebuild complete.
        self._publish_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, jobs: Iterable[QueryJob]) -> None:
        for job in jobs:
            self._add(job)
        self.store.set_order(self.jobs)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="staleness sweeper")

    async def stop(self) -> None:
        # The tasks are forgotten before they are cancelled: the supervisor lets a task it no
        # longer knows end without restarting it.
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
        task = self._tasks.pop(key)  # forgotten first: its end is not a restart
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._locked(self.store.drop, key)
        del self.jobs[key]
        del self.states[key]
        self._due.pop(key, None)
        self._restarts.pop(key, None)
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
            added_at=self.wall_clock(),
        )
        # Shown as 0 from the start, so that Prometheus' increase() sees the first restart.
        self.metrics.loop_restarts.labels(key[0], key[1])
        loop = asyncio.get_running_loop()
        self._due[key] = loop.time() + startup_offset(key, job.interval)
        self._spawn(key)

    def _spawn(self, key: QueryKey) -> None:
        task = asyncio.create_task(self._run(key), name=f"poll {key[0]}/{key[1]}")
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._loop_ended, key))

    def _loop_ended(self, key: QueryKey, task: asyncio.Task[None]) -> None:
        """The supervisor: a loop task that ends while still wanted is restarted.

        A loop never ends by itself: poll_once turns every exception into a failed poll. So
        an ending is a bug (or a cancellation from elsewhere): say so, count it, and start
        the loop again after a backoff that grows while it keeps ending without finishing a
        poll. Tasks ended by stop() or a reload are no longer in ``_tasks`` and stay ended.
        """
        if self._tasks.get(key) is not task:
            return
        error: BaseException | None = None
        if task.cancelled():
            cause = "cancelled"
        else:
            error = task.exception()
            if error is None:
                cause = "returned"
            elif not isinstance(error, Exception):
                return  # KeyboardInterrupt, SystemExit: the process is on its way down
            else:
                cause = f"{type(error).__name__}: {error}"
        restarts = self._restarts.get(key, 0)
        self._restarts[key] = restarts + 1
        delay = self.restart_backoff.delay(restarts)
        loop = asyncio.get_running_loop()
        # The supervisor waits itself: a loop that fails as soon as it starts must not spin.
        loop.call_later(delay, self._restart, key, task)
        self._due[key] = max(self._due.get(key, 0.0), loop.time() + delay)
        self.metrics.loop_restarts.labels(key[0], key[1]).inc()
        fields: dict[str, object] = {
            "collector": key[0],
            "query": key[1],
            "error": self._redact(self.jobs[key], _truncate(cause)),
            "restart_in_seconds": round(delay, 2),
        }
        if error is not None and log.isEnabledFor(logging.DEBUG):
            fields["traceback"] = "".join(traceback.format_exception(error))
        log.error("poll loop ended unexpectedly; restarting it", extra=fields)

    def _restart(self, key: QueryKey, ended: asyncio.Task[None]) -> None:
        # Still the ended task on record: neither stop() nor a reload happened meanwhile.
        if self._tasks.get(key) is ended:
            self._spawn(key)

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
        loop = asyncio.get_running_loop()
        while True:
            await self.sleep(max(0.0, self._due[key] - loop.time()))
            deadline = self._due[key] + job.interval
            self._due[key] = deadline
            await self.poll_once(key, deadline=deadline)
            self._restarts.pop(key, None)  # the loop works: a later restart starts afresh
            # A poll that overran its interval (long retries, 429 waits) skips the missed
            # ticks rather than firing them back to back.
            self._due[key] = max(deadline, loop.time())

    async def poll_once(self, key: QueryKey, deadline: float) -> None:
        """One poll: fetch, render, publish; on failure record it and maybe drop stale data.

        Whatever is raised while fetching, decoding, rendering or publishing makes a failed
        poll, never an ending loop: PollFailed carries its reason, any other exception is an
        ``internal_error``. Only cancellation (stop, reload) passes through.
        """
        job = self.jobs[key]
        state = self.states[key]
        started = time.monotonic()
        state.last_attempt = self.wall_clock()
        self._in_flight.add(key)
        try:
            body = await self._fetch_with_retries(job, deadline)
            rendered, snapshot = await asyncio.to_thread(
                self._render, key, job, body, self.wall_clock()
            )
            await self._locked(self.store.publish, snapshot)
            self._record_success(key, rendered, snapshot)
        except PollFailed as failure:
            self._record_failure(key, failure)
        except Exception as exc:  # a bug or an exception type nobody expected: still a poll
            self._record_failure(key, self._internal_failure(job, exc), exc)
        finally:
            self._in_flight.discard(key)
            state.last_duration = time.monotonic() - started
        state.last_completed = self.wall_clock()
        state.late = False
        if not state.up:
            await self._enforce_staleness(key)

    async def _locked(self, change: Callable[[_T], _R], argument: _T) -> _R:
        """Run a store change in a worker thread, one at a time, to completion.

        A cancelled poll (stop, reload) must not leave its change running in the thread after
        the lock is released: it would race the next change (a removed query's data could
        come back). So the change is shielded and awaited even when the caller is cancelled.
        """
        async with self._publish_lock:
            future = asyncio.ensure_future(asyncio.to_thread(change, argument))
            try:
                return await asyncio.shield(future)
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

    def _record_success(self, key: QueryKey, rendered: Rendered, snapshot: QuerySnapshot) -> None:
        state = self.states[key]
        state.up = True
        state.last_success = snapshot.published_at
        state.last_error = None
        state.series = snapshot.series
        state.serving_stale = False
        if rendered.dropped_rows:
            self._record_dropped_rows(key, rendered)
        if rendered.invalid_values:
            self._record_invalid_values(key, rendered)
        log.debug(
            "poll succeeded",
            extra={"collector": key[0], "query": key[1], "series": snapshot.series},
        )

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

    def _record_invalid_values(self, key: QueryKey, rendered: Rendered) -> None:
        self.metrics.invalid_values.labels(key[0], key[1]).inc(rendered.invalid_values)
        log.warning(
            "values left out: numbers beyond the float64 range Prometheus reads",
            extra={"collector": key[0], "query": key[1], "invalid_values": rendered.invalid_values},
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

    def _internal_failure(self, job: QueryJob, exc: Exception) -> PollFailed:
        text = _truncate(f"{type(exc).__name__}: {exc}")
        return PollFailed("internal_error", "internal error: " + self._redact(job, text))

    def _redact(self, job: QueryJob, text: str) -> str:
        """Keys out of a text that is not the client's own error (it shows on the landing page)."""
        client = self.clients.get(job.account) or next(iter(self.clients.values()), None)
        return client.redactor.redact(text) if client is not None else text

    def _record_failure(
        self, key: QueryKey, failure: PollFailed, exc: Exception | None = None
    ) -> None:
        state = self.states[key]
        state.up = False
        state.last_error = str(failure)
        self.metrics.poll_errors.labels(key[0], key[1], failure.reason).inc()
        fields: dict[str, object] = {
            "collector": key[0],
            "query": key[1],
            "reason": failure.reason,
            "error": str(failure),
        }
        if exc is not None and log.isEnabledFor(logging.DEBUG):
            fields["traceback"] = "".join(traceback.format_exception(exc))
        log.warning("poll failed", extra=fields)

    # -- the clock: lateness and staleness ---------------------------------------------------

    async def _sweep(self) -> None:
        """Every ``sweep_interval``: mark overdue queries late, drop series past stale_after."""
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self._sweep_once()
            except Exception as exc:  # the sweeper must outlive a bug in one check
                log.error(
                    "staleness check failed",
                    extra={"error": _truncate(f"{type(exc).__name__}: {exc}")},
                )

    async def _sweep_once(self) -> None:
        now = self.wall_clock()
        for key in list(self.states):
            if key in self.states:  # a reload may have removed it meanwhile
                self._mark_if_late(key, now)
                await self._enforce_staleness(key)

    def _mark_if_late(self, key: QueryKey, now: float) -> None:
        """A query none of whose polls finished for LATE_AFTER_INTERVALS intervals is late.

        Measured from the last finished poll (success or failure), or from when the query was
        added: a query whose polls fail is down, not late; late means polls stop coming (hung,
        overrunning, loop dead). A late query is down too, whatever its last poll said.
        """
        state = self.states[key]
        since = state.last_completed if state.last_completed is not None else state.added_at
        if state.late or since is None or now - since <= LATE_AFTER_INTERVALS * state.interval:
            return
        state.late = True
        state.up = False
        log.warning(
            "poll overdue: no poll finished for over two intervals",
            extra={
                "collector": key[0],
                "query": key[1],
                "seconds_since_last_poll": round(now - since),
                "poll_in_flight": key in self._in_flight,
            },
        )

    async def _enforce_staleness(self, key: QueryKey) -> None:
        """Serve a down query's last good series until they are older than its stale_after,
        then drop them. The one place that decides; failed polls and the sweeper both ask."""
        job = self.jobs[key]
        state = self.states[key]
        snapshot = self.store.get(key)
        if state.up or snapshot is None:
            return
        age = self.wall_clock() - snapshot.published_at
        if age <= job.keep_stale_seconds:
            state.serving_stale = True
            return
        if not await self._locked(self._drop_unless_replaced, snapshot):
            return  # a newer poll was published meanwhile, or the query went
        state.series = 0
        state.serving_stale = False
        log.warning(
            "dropped stale series",
            extra={"collector": key[0], "query": key[1], "age_seconds": round(age)},
        )

    def _drop_unless_replaced(self, snapshot: QuerySnapshot) -> bool:
        """Drop a query's snapshot if it still is this one (runs under the publish lock)."""
        if self.store.get(snapshot.key) is not snapshot:
            return False
        return self.store.drop(snapshot.key)


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."
