"""The one adapter between the backfill and the exporter's polling parts (the collectors,
the Datadog client, the fetch path); the rest of the backfill reaches them only through it,
but for the CredentialsError that building the clients raises, which ``cli`` reports.

- :func:`select_queries` and :func:`sections`: the queries ``--query`` names and the
  collectors with history, from the registry;
- :meth:`WindowSource.fetch`: the answer of query Q for the window a live poll at ``t``
  asks for (``[t - delay - window, t - delay]``), through the same :class:`DatadogClient`
  (one per account, built as the exporter builds its pool), through the scheduler's one fetch
  path (:func:`fetch_with_retries`) under a stop rule of its own: no poll deadline (a backfill
  window has no next tick to give up for), 429s not counted against the attempts;
  :meth:`WindowSource.client` gives an account's client, whose rate-limit state the
  progress and the budget lines read;
- :func:`render`: that answer as the live exporter renders it (same collector job, same
  families, label sets and values), plus ``datadog_exporter_window_seconds``.

Which collectors have history is the registry's ``history`` flag.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..clock import SYSTEM_CLOCK, Clock
from ..collectors.protocol import DecodeError, QueryJob
from ..collectors.registry import REGISTRY
from ..config.schema import Config, TimeWindowQuery
from ..datadog.client import DatadogClient, Forbidden, MissingCredentials, Unauthorized
from ..datadog.pool import build_pool, default_account
from ..exposition import escape_label_value, format_value
from ..logs import Redactor
from ..scheduler.fetch import Attempts, FetchFailed, StopRule, fetch_with_retries
from ..scheduler.policy import PollPolicy
from ..selfmetrics import WINDOW
from .openmetrics import header, split_samples

log = logging.getLogger(__name__)

# Requests of one (account, endpoint) in flight at once: enough to hide latency, few enough
# to hold at most this many answers in memory.
IN_FLIGHT_PER_ENDPOINT = 2
# Attempts of a window after 5xx, timeouts and connection errors (429s wait, not count).
MAX_ATTEMPTS = 5

# The live exporter's family (declared once, in selfmetrics): same name, help and type.
WINDOW_FAMILY = WINDOW


@dataclass(frozen=True)
class HistoryQuery:
    """A configured query of a collector with history, as the backfill fetches it."""

    collector: str
    name: str
    account: str
    settings: TimeWindowQuery
    job: QueryJob
    label_names: tuple[str, ...]

    @property
    def endpoint(self) -> str:
        return self.job.endpoint

    @property
    def interval(self) -> float:
        return self.settings.interval

    @property
    def fingerprint(self) -> str:
        """What makes two runs' samples of this query the same samples."""
        return json.dumps(
            {"account": self.account, "settings": self.settings.model_dump(mode="json")},
            sort_keys=True,
        )


def sections(*, history: bool) -> list[str]:
    """The collectors (configuration sections) with history, or those without, in registry
    order: what the backfill's messages name."""
    return [entry.section for entry in REGISTRY if entry.history is history]


def spoken(names: Sequence[str], conjunction: str) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


@dataclass
class Selection:
    queries: list[HistoryQuery]
    no_history: list[tuple[str, str]]  # (collector, name) of selected cases/audience queries
    unknown: list[str]  # --query values that match nothing


def select_queries(config: Config, wanted: Sequence[str]) -> Selection:
    """The queries ``--query`` names (``NAME`` or ``COLLECTOR/NAME``; none: every one)."""
    account_label = config.account_label
    history: list[HistoryQuery] = []
    others: list[tuple[str, str]] = []
    for entry in REGISTRY:
        for q in getattr(config, entry.section):
            if not entry.history:
                others.append((entry.section, q.name))
                continue
            # A past window is asked for with from/to: only windowed queries have history.
            assert isinstance(q, TimeWindowQuery)
            job = entry.job(q, config.account_of(q), account_label)
            labels = ("query", "account", *job.label_names)
            history.append(HistoryQuery(entry.section, q.name, job.account, q, job, labels))

    def matches(collector: str, name: str, spec: str) -> bool:
        return spec in (name, f"{collector}/{name}")

    if not wanted:
        return Selection(history, others, [])
    return Selection(
        [q for q in history if any(matches(q.collector, q.name, w) for w in wanted)],
        [(c, n) for c, n in others if any(matches(c, n, w) for w in wanted)],
        [
            w
            for w in wanted
            if not any(matches(q.collector, q.name, w) for q in history)
            and not any(matches(c, n, w) for c, n in others)
        ],
    )


# -- rendering ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedWindow:
    samples: list[tuple[str, bytes, bytes]]  # (family, labels, value)
    headers: dict[str, bytes]  # OpenMetrics header of every family in samples
    dropped_rows: int


def render(
    query: HistoryQuery, body: bytes, targets: bytes, families: frozenset[str] | None = None
) -> RenderedWindow:
    """The answer as the live exporter would serve it, with ``targets`` in front of every
    series' labels, only ``families`` if given; raises DecodeError for an answer the
    collector cannot use."""
    rendered = query.job.render(query.job.decode(body))
    samples: list[tuple[str, bytes, bytes]] = []
    headers: dict[str, bytes] = {}
    for item in rendered.families:
        name = item.family.name
        if families is not None and name not in families:
            continue
        headers[name] = header(item.family)
        samples.extend(
            (name, labels, value) for labels, value in split_samples(name, item.samples, targets)
        )
    if families is None or WINDOW_FAMILY.name in families:
        window = f'collector="{query.collector}",query="{escape_label_value(query.name)}"}}'
        samples.append(
            (
                WINDOW_FAMILY.name,
                b"{" + targets + window.encode(),
                format_value(query.settings.window).encode(),
            )
        )
        headers[WINDOW_FAMILY.name] = header(WINDOW_FAMILY)
    return RenderedWindow(samples, headers, rendered.dropped_rows)


# -- fetching -------------------------------------------------------------------------------


class WindowFailed(Exception):
    """A window that could not be fetched (after retries); ``reason`` as in poll errors."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Fatal(Exception):
    """Every further window would fail the same way (keys refused or missing)."""


@dataclass
class Stats:
    calls: int = 0
    rate_limited: int = 0  # 429 answers
    pauses: int = 0  # waits for a 429's reset or a paced slot
    paused_seconds: float = 0.0
    by_code: dict[str, int] = field(default_factory=dict)


class WindowSource:
    """Fetches windows through one Datadog client per account (the exporter's pool)."""

    def __init__(
        self,
        config: Config,
        redactor: Redactor,
        *,
        rng: random.Random | None = None,
        on_answer: Callable[[str, str], None] = lambda account, endpoint: None,
        clock: Clock = SYSTEM_CLOCK,
        policy: PollPolicy | None = None,
        environ: Mapping[str, str],
    ) -> None:
        """Keys and site come from ``environ`` (the command line's snapshot of the
        environment) as for the live exporter. Raises
        ConfigError (unknown site) or CredentialsError (keys missing). ``clock`` is what waits
        (rate limits, retries) run on; ``policy`` gives the retry backoff."""
        self.stats = Stats()
        self.rng = rng or random.Random()
        self.on_answer = on_answer
        self.clock = clock
        self.retry = (policy or PollPolicy()).retry
        self.pool = build_pool(
            config,
            *default_account(config, redactor, environ),
            redactor,
            self._count,
            environ=environ,
            clock=clock,
        )

    def _count(self, endpoint: str, code: str, account: str) -> None:
        self.stats.calls += 1
        self.stats.by_code[code] = self.stats.by_code.get(code, 0) + 1
        if code == "429":
            self.stats.rate_limited += 1
        self.on_answer(account, endpoint)

    def client(self, account: str) -> DatadogClient:
        return self.pool.client(account)

    async def close(self) -> None:
        await self.pool.close()

    async def fetch(self, query: HistoryQuery, t: int) -> bytes:
        """The answer for the window a poll at ``t`` asks for; raises WindowFailed or Fatal."""
        attempts = Attempts()
        try:
            return await fetch_with_retries(
                self.client(query.account),
                query.job.request(float(t)),
                _WINDOW_STOP,
                clock=self.clock,
                retry=self.retry,
                rng=self.rng,
                attempts=attempts,
            )
        except FetchFailed as failure:
            if isinstance(failure.cause, (MissingCredentials, Unauthorized, Forbidden)):
                raise Fatal(str(failure)) from None
            raise WindowFailed(failure.reason, str(failure)) from None
        finally:
            self.stats.pauses += attempts.slot_waits
            self.stats.paused_seconds += attempts.slot_seconds


# A window waits for its slots as long as it takes (no next tick to give up for); a 429 does
# not count against its attempts. Answers of concurrent requests can arrive out of order, so
# the last one read may count up to IN_FLIGHT - 1 fewer calls than Datadog has seen: that
# many are kept in reserve rather than meet the limit with a 429.
_WINDOW_STOP = StopRule(
    max_attempts=MAX_ATTEMPTS, rate_limited_counts=False, reserve=IN_FLIGHT_PER_ENDPOINT - 1
)


# DecodeError is what render() raises: the runner takes it from here, like everything else.
__all__ = [
    "IN_FLIGHT_PER_ENDPOINT",
    "WINDOW_FAMILY",
    "DecodeError",
    "Fatal",
    "HistoryQuery",
    "RenderedWindow",
    "Selection",
    "Stats",
    "WindowFailed",
    "WindowSource",
    "render",
    "select_queries",
]
