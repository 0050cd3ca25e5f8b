"""One query's polls, and the one writer of its :class:`QueryState`.

A poll asks the endpoint's rate limits for a slot, fetches, renders the answer off the event
loop, and publishes it. It sends at most ``max_attempts`` requests in all (datadog.max_attempts),
whatever the interval, so a Datadog incident costs a bounded number of calls: a 5xx, timeout
or connection error is retried after the Retry-After Datadog sent (when it fits before the
next poll) or a capped, jittered backoff; after a 429 the next slot waits out its block; a
401, 403 or other 4xx is not retried (a key does not fix itself within seconds). A failed
poll — for any reason, an unexpected exception included — marks the query down and keeps its
last good series until they are older than its staleness bound; the first good poll after
failures says how long the query was down. What the clock decides without a poll (late,
stale) is decided here too, when the sweeper asks. Each change of what /metrics shows of the
query (the end of a poll, a transition the clock decides) is told to the self-metrics, which
render the query's samples then, not at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from typing import get_args, get_type_hints

from ..clock import Clock
from ..collectors.protocol import DecodeError, QueryJob
from ..config.schema import DEFAULT_MAX_ATTEMPTS
from ..datadog.client import RequestFailed
from ..datadog.ratelimit import NoSlot
from ..durations import format_duration
from ..exposition import Rendered
from ..logs import Redactor
from ..selfmetrics import SelfMetrics
from ..snapshot import QueryKey, QuerySnapshot, prepare_snapshot
from .fetch import Attempts, ClientLookup, FetchFailed, StopRule, fetch_with_retries
from .policy import Backoff
from .state import QueryState
from .writer import StoreWriter

log = logging.getLogger(__package__)

# A query none of whose polls finished for this many intervals is late (and down).
LATE_AFTER_INTERVALS = 2
# Longest text of an unexpected exception kept for the log line and the landing page.
MAX_ERROR_TEXT = 500
# Reasons of failures that are not the client's: an answer nobody can use, a bug.
DECODE_ERROR = "decode_error"
INTERNAL_ERROR = "internal_error"


def _error_reasons() -> tuple[str, ...]:
    """Every reason a poll can fail for, read from the error classes that carry them: no
    slot before the deadline, each RequestFailed the client raises, and the two of this module."""
    no_slot = get_args(get_type_hints(NoSlot.__init__)["reason"])
    found: list[str] = []
    pending: list[type[RequestFailed]] = [RequestFailed]
    while pending:
        cls = pending.pop(0)
        pending += cls.__subclasses__()
        if cls is not RequestFailed:
            found.append(cls.reason)
    return tuple(dict.fromkeys([*no_slot, *found, DECODE_ERROR, INTERNAL_ERROR]))


# The values of poll_errors' reason label, one list for the scheduler and the reference.
ERROR_REASONS = _error_reasons()


class PollFailed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class QueryPoller:
    """Polls one query through the client of its account (``clients`` looks it up at each
    poll: the owner answers with its current clients across reloads); ``redactor`` takes
    keys out of texts that are not the client's own errors."""

    def __init__(
        self,
        job: QueryJob,
        clients: ClientLookup,
        redactor: Redactor,
        writer: StoreWriter,
        metrics: SelfMetrics,
        *,
        clock: Clock,
        retry: Backoff,
        rng: random.Random,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ):
        self.job = job
        self.key: QueryKey = (job.collector, job.name)
        self.clients = clients
        self.redactor = redactor
        self.writer = writer
        self.metrics = metrics
        self.clock = clock
        self.retry = retry
        self.rng = rng
        # Requests one poll may send in all; the owner may change it (a reload).
        self.max_attempts = max_attempts
        # What the current (or last) poll's fetch did (requests sent, waits).
        self.attempts = Attempts()
        # Failed polls since the last good one, and when the first of them started.
        self.failed_polls = 0
        self.down_since: float | None = None  # monotonic
        self.state = QueryState(
            collector=job.collector,
            name=job.name,
            endpoint=job.endpoint,
            account=job.account,
            interval=job.interval,
            window=job.window,
            added_at=clock.monotonic(),
            empty_answer_is_news=job.empty_answer_is_news,
        )
        self.in_flight = False
        # The unresolved group_by fields last logged, so a change is logged once.
        self._unresolved_said: frozenset[str] = frozenset()

    async def poll_once(self, deadline: float) -> None:
        """One poll, given up at ``deadline`` (monotonic): fetch, render, publish; on failure
        record it and maybe drop stale data.

        Whatever is raised while fetching, decoding, rendering or publishing makes a failed
        poll, never an ending loop: PollFailed carries its reason, any other exception is an
        ``internal_error``. Only cancellation (stop, reload) passes through.
        """
        state = self.state
        started = self.clock.monotonic()
        state.last_attempt = self.clock.wall()
        self.in_flight = True
        self.attempts = Attempts()
        try:
            body = await self._fetch(deadline)
            received = self.clock.monotonic()  # the age of these series counts from here
            rendered, snapshot = await asyncio.to_thread(self._render, body, self.clock.wall())
            await self.writer.publish(snapshot)
            self._record_success(rendered, snapshot, received)
        except PollFailed as failure:
            self._record_failure(failure, started)
        except Exception as exc:  # a bug or an exception type nobody expected: still a poll
            self._record_failure(self._internal_failure(exc), started, exc)
        finally:
            self.in_flight = False
            state.last_duration = self.clock.monotonic() - started
        state.last_completed = self.clock.monotonic()
        state.late = False
        self.metrics.query_changed(self.key)
        if not state.up:
            await self.enforce_staleness()

    async def _fetch(self, deadline: float) -> bytes:
        """The body of the first good answer, through the one fetch path: at most
        ``max_attempts`` requests (429s included), no wait past ``deadline``."""
        job = self.job
        try:
            return await fetch_with_retries(
                self.clients(job.account),
                job.request(self.clock.wall()),
                StopRule(max_attempts=self.max_attempts, deadline=deadline),
                clock=self.clock,
                retry=self.retry,
                rng=self.rng,
                attempts=self.attempts,
            )
        except FetchFailed as failure:
            raise PollFailed(failure.reason, str(failure)) from None

    def _render(self, body: bytes, now: float) -> tuple[Rendered, QuerySnapshot]:
        try:
            rendered = self.job.render(self.job.decode(body))
        except DecodeError as exc:
            raise PollFailed(DECODE_ERROR, str(exc)) from None
        return rendered, prepare_snapshot(self.key, rendered, now)

    def _record_success(self, rendered: Rendered, snapshot: QuerySnapshot, received: float) -> None:
        if self.failed_polls:
            self._record_recovery()
        state = self.state
        state.up = True
        state.last_success = snapshot.published_at
        state.last_success_monotonic = received
        state.last_error = None
        state.series = snapshot.series
        state.serving_stale = False
        self._record_answer(rendered)
        if rendered.dropped_rows:
            self._record_dropped_rows(rendered)
        if rendered.invalid_values:
            self._record_invalid_values(rendered)
        log.debug(
            "poll succeeded",
            extra={"collector": self.key[0], "query": self.key[1], "series": snapshot.series},
        )

    def _record_recovery(self) -> None:
        """One line when a good poll follows failed ones: how many, and for how long."""
        since = self.down_since if self.down_since is not None else self.clock.monotonic()
        down = max(0.0, self.clock.monotonic() - since)
        failed = self.failed_polls
        log.info(
            f"recovered after {failed} failed poll{'s' if failed != 1 else ''}, "
            f"down for {format_duration(round(down))}",
            extra={
                "collector": self.key[0],
                "query": self.key[1],
                "failed_polls": failed,
                "down_seconds": round(down, 3),
            },
        )
        self.failed_polls = 0
        self.down_since = None

    def _record_answer(self, rendered: Rendered) -> None:
        """Keep what the answer carried; log when it becomes empty or has rows again, and
        when the set of group_by fields no row resolved changes (once each, not per poll)."""
        state = self.state
        before = state.rows
        state.rows = rendered.rows
        fields = {"collector": self.key[0], "query": self.key[1]}
        # Where 0 rows is the healthy answer (no insight), neither change is news.
        news = state.empty_answer_is_news
        if news and rendered.rows == 0 and (before is None or before > 0):
            log.warning(
                "query answered 0 rows: it is up but matches nothing; "
                "check its filters, tags and group_by",
                extra=fields,
            )
        elif news and rendered.rows > 0 and before == 0:
            log.info("query has rows again", extra={**fields, "rows": rendered.rows})
        if not rendered.rows:
            return  # an empty answer says nothing about the fields: keep the last judgement
        state.group_by_unresolved = rendered.group_by_unresolved
        unresolved = frozenset(state.unresolved_fields)
        if unresolved == self._unresolved_said:
            return
        if unresolved:
            log.warning(
                "group_by fields unresolved: N/A or absent in every row of the answer; "
                "most often a field Datadog does not know (check the spelling)",
                extra={**fields, "fields": ",".join(sorted(unresolved))},
            )
        else:
            log.info("group_by fields resolved again", extra=fields)
        self._unresolved_said = unresolved

    def _record_dropped_rows(self, rendered: Rendered) -> None:
        self.metrics.rows_dropped(self.key, rendered.dropped_rows)
        log.warning(
            "rows dropped: the query would exceed its max_series",
            extra={
                "collector": self.key[0],
                "query": self.key[1],
                "dropped_rows": rendered.dropped_rows,
                "series_kept": rendered.series,
            },
        )

    def _record_invalid_values(self, rendered: Rendered) -> None:
        self.metrics.values_left_out(self.key, rendered.invalid_values)
        log.warning(
            "values left out: numbers beyond the float64 range Prometheus reads",
            extra={
                "collector": self.key[0],
                "query": self.key[1],
                "invalid_values": rendered.invalid_values,
            },
        )

    def _internal_failure(self, exc: Exception) -> PollFailed:
        text = truncate(f"{type(exc).__name__}: {exc}")
        return PollFailed(INTERNAL_ERROR, "internal error: " + self.redact(text))

    def redact(self, text: str) -> str:
        """Keys out of a text that is not the client's own error (it shows on the landing page)."""
        return self.redactor.redact(text)

    def _record_failure(
        self, failure: PollFailed, started: float, exc: Exception | None = None
    ) -> None:
        state = self.state
        state.up = False
        state.last_error = str(failure)
        if not self.failed_polls:
            self.down_since = started
        self.failed_polls += 1
        self.metrics.poll_failed(self.key, failure.reason)
        fields: dict[str, object] = {
            "collector": self.key[0],
            "query": self.key[1],
            "reason": failure.reason,
            "attempts": self.attempts.sent,
            "error": str(failure),
        }
        if exc is not None and log.isEnabledFor(logging.DEBUG):
            fields["traceback"] = "".join(traceback.format_exception(exc))
        log.warning("poll failed", extra=fields)

    # -- the clock: lateness and staleness ---------------------------------------------------

    def mark_if_late(self, now: float) -> None:
        """A query none of whose polls finished for LATE_AFTER_INTERVALS intervals is late
        (``now`` on the monotonic scale: a wall-clock step makes nobody late).

        Measured from the last finished poll (success or failure), or from when the query was
        added: a query whose polls fail is down, not late; late means polls stop coming (hung,
        overrunning, loop dead). A late query is down too, whatever its last poll said.
        """
        state = self.state
        since = state.last_completed if state.last_completed is not None else state.added_at
        if state.late or since is None or now - since <= LATE_AFTER_INTERVALS * state.interval:
            return
        state.late = True
        state.up = False
        self.metrics.query_changed(self.key)
        log.warning(
            "poll overdue: no poll finished for over two intervals",
            extra={
                "collector": self.key[0],
                "query": self.key[1],
                "seconds_since_last_poll": round(now - since),
                "poll_in_flight": self.in_flight,
            },
        )

    async def enforce_staleness(self) -> None:
        """Serve a down query's last good series until they are older than its stale_after,
        then drop them. The one place that decides; failed polls and the sweeper both ask."""
        state = self.state
        snapshot = self.writer.get(self.key)
        published = state.last_success_monotonic
        if state.up or snapshot is None or published is None:
            return
        # Monotonic: set back by hours, the wall clock would keep dead series for those hours.
        age = self.clock.monotonic() - published
        if age <= self.job.effective_stale_after:
            if not state.serving_stale:
                state.serving_stale = True
                self.metrics.query_changed(self.key)
            return
        if not await self.writer.drop_if_current(snapshot):
            return  # a newer poll was published meanwhile, or the query went
        state.series = 0
        state.serving_stale = False
        self.metrics.query_changed(self.key)
        log.warning(
            "dropped stale series",
            extra={"collector": self.key[0], "query": self.key[1], "age_seconds": round(age)},
        )


def truncate(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."
