"""The job protocol every collector meets (:class:`QueryJob`), the request it builds
(:class:`ApiRequest`) and the one error its decoders may raise (:class:`DecodeError`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..exposition import Rendered


class DecodeError(Exception):
    """The API answered 2xx with a body we cannot use (not JSON, wrong shape, bad types)."""


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request to Datadog, described as data so it can be logged and tested."""

    endpoint: str  # short name used in self-metrics and rate-limit state: "connections", ...
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json_body: Any = None
    # What a 400 whose body names no cause most likely means for this endpoint, said instead
    # of the empty body (None: the body is described as it is).
    bare_400_hint: str | None = None


# The CNM endpoints answer a bare 400 to an organisation without Cloud Network Monitoring.
NO_CNM_HINT = (
    "Bad Request with no details; is Cloud Network Monitoring enabled for this organisation?"
)


class QueryJob(Protocol):
    """One configured query of any collector: builds its request, decodes and renders its answer.

    ``render(decode(body))`` is one poll's work, and all of it is pure. ``decode`` checks the
    answer's shape; ``render`` turns what it gives into families. Both raise DecodeError on a
    body that cannot be used, and only that.
    """

    @property
    def collector(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def account(self) -> str:
        """The Datadog account (organisation) the query polls; picks the client."""
        ...

    @property
    def endpoint(self) -> str: ...

    @property
    def interval(self) -> float: ...

    @property
    def window(self) -> float | None: ...

    @property
    def effective_stale_after(self) -> float: ...

    @property
    def label_names(self) -> list[str]:
        """The labels of its series named after the query's fields (``group_by``), in order;
        empty for a collector whose labels are all fixed."""
        ...

    @property
    def empty_answer_is_news(self) -> bool:
        """Whether an answer with no rows is worth telling the operator (a filter that
        matches nothing); False where nothing to report is the healthy answer."""
        ...

    def request(self, now: float) -> ApiRequest:
        """The request for a poll starting at Unix time ``now``."""
        ...

    def decode(self, body: bytes) -> Any:
        """The answer in ``body``, typed as the collector reads it; DecodeError when unusable."""
        ...

    def render(self, answer: Any) -> Rendered:
        """The families of a decoded answer (``decode``'s result)."""
        ...
