"""Polling on a schedule: one background loop per query, what to publish or drop.

Each query polls on its own interval, the first poll spread over the first seconds so a big
configuration does not burst. One owner per piece:

- :mod:`.fetch` — :func:`~.fetch.fetch_with_retries`: the one fetch path (rate-limit slot,
  fetch, classify, retry) of polls and backfill windows; :class:`Client` is what it needs
  of a Datadog client;
- :mod:`.poll` — :class:`QueryPoller`: one query's polls (fetch, render, publish) and the
  one writer of its :class:`QueryState` (:mod:`.state`), lateness and staleness included;
- :mod:`.loop` — :class:`PollLoop`: one query's schedule and task, restarted by its
  supervisor when it ends anyway;
- :mod:`.scheduler` — :class:`Scheduler`: the collection (add, reload, stop, order) and
  the sweeper that checks every query against the clock;
- :mod:`.writer` — :class:`StoreWriter`: changes to the snapshot store, one at a time;
- :mod:`.policy` — :class:`PollPolicy`: start-up spread, retry and restart backoff, sweeps.

Every wait and every age goes through one injected :class:`~exporter.clock.Clock`.
"""

from .fetch import Client, ClientLookup
from .policy import Backoff, PollPolicy
from .poll import ERROR_REASONS
from .scheduler import JobChanges, Scheduler
from .state import QueryState

__all__ = [
    "ERROR_REASONS",
    "Backoff",
    "Client",
    "ClientLookup",
    "JobChanges",
    "PollPolicy",
    "QueryState",
    "Scheduler",
]
