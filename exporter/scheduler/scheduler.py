"""The collection of queries: which ones run, in which order, and the sweeper over them.

:class:`Scheduler` adds, removes and reloads queries (each a :class:`QueryPoller` driven by
its :class:`PollLoop`), keeps the store's order the configuration's, and runs one sweeper
task that checks every query against the clock, so a query whose polls stop coming (hung,
overrunning, loop dead) is marked late and down, and its series dropped after
``stale_after``, without waiting for a poll that may never finish.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..clock import SYSTEM_CLOCK, Clock
from ..collectors.protocol import QueryJob
from ..config.schema import DEFAULT_MAX_ATTEMPTS
from ..logs import Redactor
from ..selfmetrics import SelfMetrics
from ..snapshot import QueryKey, SnapshotStore
from .fetch import ClientLookup
from .loop import PollLoop
from .policy import PollPolicy
from .poll import QueryPoller, truncate
from .state import QueryState
from .writer import StoreWriter

log = logging.getLogger(__package__)


@dataclass
class JobChanges:
    """What :meth:`Scheduler.apply` did, by query key."""

    added: list[QueryKey] = field(default_factory=list)
    changed: list[QueryKey] = field(default_factory=list)
    removed: list[QueryKey] = field(default_factory=list)
    unchanged: list[QueryKey] = field(default_factory=list)


class Scheduler:
    """Owns the queries' pollers and loops and the staleness sweeper; everything they
    produce goes to the store (through one :class:`StoreWriter`) and the self-metrics.

    Each job polls through the client of its account (``clients`` looks it up by account
    name at each poll; the owner answers with its current clients across reloads);
    ``redactor`` takes keys out of the texts the scheduler words itself (an unexpected
    exception, a restarted loop's cause). Rate-limit state lives in each client's
    ``rate_limits``, so it is per account and endpoint: Datadog limits each organisation separately.

    ``clock`` is every wait and every age (deadlines, staleness, lateness); ``policy`` how
    polls are spaced (start-up spread, retries, restarts, sweeps); ``rng`` the jitter;
    ``max_attempts`` the requests one poll may send in all (datadog.max_attempts).
    Queries added before :meth:`start` wait for it; :meth:`poll_once` polls one now.
    """

    def __init__(
        self,
        clients: ClientLookup,
        redactor: Redactor,
        store: SnapshotStore,
        metrics: SelfMetrics,
        *,
        clock: Clock = SYSTEM_CLOCK,
        policy: PollPolicy | None = None,
        rng: random.Random | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ):
        self.clients = clients
        self.redactor = redactor
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.policy = policy or PollPolicy()
        self.rng = rng or random.Random()
        self.max_attempts = max_attempts
        self._writer = StoreWriter(store)
        self._loops: dict[QueryKey, PollLoop] = {}  # configuration order
        self._started = False
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, jobs: Iterable[QueryJob] = ()) -> None:
        """Add ``jobs``, then run every query's loop and the sweeper."""
        await self.add(*jobs)
        self._started = True
        for loop in self._loops.values():
            if not loop.running:
                loop.start()
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="staleness sweeper")

    async def add(self, *jobs: QueryJob) -> None:
        """Take on new queries, after the ones there are; their loops run once started."""
        for job in jobs:
            self._add(job)
        await self._writer.set_order(self._loops)

    def _add(self, job: QueryJob) -> None:
        poller = QueryPoller(
            job,
            self.clients,
            self.redactor,
            self._writer,
            self.metrics,
            clock=self.clock,
            retry=self.policy.retry,
            rng=self.rng,
            max_attempts=self.max_attempts,
        )
        first_due = self.clock.monotonic() + self.policy.startup_offset(poller.key, job.interval)
        loop = PollLoop(
            poller, self.metrics, clock=self.clock, restart=self.policy.restart, first_due=first_due
        )
        self._loops[poller.key] = loop
        self.metrics.show_query(poller.state)  # its samples from now on, loss counters at 0
        if self._started:
            loop.start()

    def set_max_attempts(self, max_attempts: int) -> None:
        """Requests each poll may send in all from now on (datadog.max_attempts, reloaded)."""
        self.max_attempts = max_attempts
        for loop in self._loops.values():
            loop.poller.max_attempts = max_attempts

    async def stop(self) -> None:
        tasks = [task for loop in self._loops.values() if (task := loop.cancel()) is not None]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper.cancel()
            self._sweeper = None
        self._started = False
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
        for key, loop in self._loops.items():
            if key not in wanted:
                changes.removed.append(key)
            elif wanted[key] != loop.poller.job:
                changes.changed.append(key)
            else:
                changes.unchanged.append(key)
        changes.added = [key for key in wanted if key not in self._loops]
        for key in changes.removed + changes.changed:
            await self._remove(key)
        for key in changes.changed + changes.added:
            self._add(wanted[key])
        # Configuration order decides the order on /metrics and the landing page.
        self._loops = {key: self._loops[key] for key in wanted}
        await self._writer.set_order(wanted)
        return changes

    async def _remove(self, key: QueryKey) -> None:
        await self._loops[key].stop()  # forgotten first: its end is not a restart
        await self._writer.drop(key)
        del self._loops[key]
        self.metrics.forget_query(key)

    # -- polls and views ---------------------------------------------------------------------

    async def poll_once(self, key: QueryKey, deadline: float) -> None:
        """Poll one query now, outside its schedule, giving up at ``deadline`` (on the
        clock's monotonic scale)."""
        await self._loops[key].poller.poll_once(deadline)

    def state(self, key: QueryKey) -> QueryState:
        return self._loops[key].poller.state

    def query_states(self) -> list[QueryState]:
        """Every query's state, in configuration order."""
        return [loop.poller.state for loop in self._loops.values()]

    # -- the sweeper -------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Every ``sweep_interval``: mark overdue queries late, drop series past stale_after."""
        while True:
            await self.clock.sleep(self.policy.sweep_interval)
            try:
                await self._sweep_once()
            except Exception as exc:  # the sweeper must outlive a bug in one check
                log.error(
                    "staleness check failed",
                    extra={"error": truncate(f"{type(exc).__name__}: {exc}")},
                )

    async def _sweep_once(self) -> None:
        now = self.clock.monotonic()
        for key, loop in list(self._loops.items()):
            if self._loops.get(key) is loop:  # a reload may have removed it meanwhile
                loop.poller.mark_if_late(now)
                await loop.poller.enforce_staleness()
