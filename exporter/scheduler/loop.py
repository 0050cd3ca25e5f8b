"""One query's background loop: its schedule, its task, and the supervisor that restarts it.

The loop waits for each due time and polls; a poll that overruns its interval skips the
missed ticks. The loop never ends by itself (a poll turns every exception into a failed
poll), so a task that ends anyway is a bug or a cancellation from elsewhere: the task's done
callback says so, counts it, and starts the loop again after a backoff that grows while it
keeps ending before finishing a poll.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

from ..clock import Clock
from ..selfmetrics import SelfMetrics
from .policy import Backoff
from .poll import QueryPoller, truncate

log = logging.getLogger(__package__)


class PollLoop:
    def __init__(
        self,
        poller: QueryPoller,
        metrics: SelfMetrics,
        *,
        clock: Clock,
        restart: Backoff,
        first_due: float,
    ):
        """``first_due``: monotonic time of the first poll."""
        self.poller = poller
        self.metrics = metrics
        self.clock = clock
        self.restart = restart
        # When the next poll is due. Kept outside the task so a restarted loop resumes the
        # schedule instead of polling early.
        self.due = first_due
        # Restarts since the loop last finished a poll (the backoff exponent).
        self.restarts = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None

    def start(self) -> None:
        key = self.poller.key
        task = asyncio.create_task(self._run(), name=f"poll {key[0]}/{key[1]}")
        self.task = task
        task.add_done_callback(self._ended)

    def cancel(self) -> asyncio.Task[None] | None:
        """Stop the loop; return its task for the caller to await. The task is forgotten
        before it is cancelled: the supervisor lets a task it no longer knows end."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
        return task

    async def stop(self) -> None:
        task = self.cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(max(0.0, self.due - self.clock.monotonic()))
            deadline = self.due + self.poller.job.interval
            self.due = deadline
            await self.poller.poll_once(deadline)
            self.restarts = 0  # the loop works: a later restart starts afresh
            # A poll that overran its interval (long retries, 429 waits) skips the missed
            # ticks rather than firing them back to back.
            self.due = max(deadline, self.clock.monotonic())

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The supervisor: a loop task that ends while still wanted is restarted.

        Tasks ended by stop() (or a reload) are no longer ``self.task`` and stay ended. The
        restarted loop's first wait is at least the backoff: its due time moves past it, so a
        loop that fails as soon as it starts does not spin.
        """
        if self.task is not task:
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
        delay = self.restart.delay(self.restarts)
        self.restarts += 1
        self.due = max(self.due, self.clock.monotonic() + delay)
        key = self.poller.key
        self.metrics.loop_restarted(key)
        fields: dict[str, object] = {
            "collector": key[0],
            "query": key[1],
            "error": self.poller.redact(truncate(cause)),
            "restart_in_seconds": round(delay, 2),
        }
        if error is not None and log.isEnabledFor(logging.DEBUG):
            fields["traceback"] = "".join(traceback.format_exception(error))
        log.error("poll loop ended unexpectedly; restarting it", extra=fields)
        self.start()
