"""Value types that configure the simulator: options, faults and data scenarios.

Owns validation of these values (also when they arrive as JSON over the control
routes or as CLI flags); it must not know how they are applied.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

FaultKind = Literal[
    "status",
    "rate_limit",
    "latency",
    "hang",
    "drip",
    "malformed",
    "truncated",
    "html",
    "wrong_shape",
    "huge",
    "redirect",
    "raw",
]
# A header name as RFC 9110 spells a token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_value(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.isprintable()


ErrorShape = Literal["strings", "jsonapi", "jsonapi_no_detail", "generic", "code"]
ScenarioKind = Literal[
    "retransmit_storm",
    "rtt_spike",
    "resets_spike",
    "refusals_spike",
    "timeouts_spike",
    "dark",
    "dns_servfail_spike",
    "dns_timeout_spike",
    "dns_nxdomain_spike",
    # Network Health Insights (see simulator/network_health.py for what each does).
    "nhi_dns_failure_burst",
    "nhi_tcp_failure_burst",
    "nhi_security_group_denial",
    "nhi_certificate_expiry",
]
CasesMultiGroup = Literal["combined", "facets", "first_field"]

FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
ERROR_SHAPES: tuple[ErrorShape, ...] = get_args(ErrorShape)
SCENARIO_KINDS: tuple[ScenarioKind, ...] = get_args(ScenarioKind)
CASES_MULTI_GROUP_MODES: tuple[CasesMultiGroup, ...] = get_args(CasesMultiGroup)


class OptionError(ValueError):
    """A fault, scenario or option value that makes no sense."""


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    """How the simulated Datadog behaves. Every instance is independent."""

    api_key: str = "sim-api-key"
    app_key: str = "sim-app-key"
    seed: int = 42
    connections_universe: int = 300
    rate_limit: int = 1000
    rate_limit_period: int = 60
    cases_universe: int = 240
    # Datadog does not document how several case `groups` fields come back;
    # see docs/simulator.md. "combined" is the default guess.
    cases_multi_group: CasesMultiGroup = "combined"
    # False: the organisation has no Cloud Network Monitoring; the connections and dns
    # endpoints answer a bare 400 (what Datadog is reported to do), the others work.
    cnm_enabled: bool = True
    # Endpoints the application key lacks the permission for: after the key check they
    # answer 403 "Failed permission authorization checks", as Datadog does for a key without
    # the endpoint's permission (network_connections_read, cases_read, ...).
    denied_endpoints: tuple[str, ...] = ()
    # How much quieter the weekend is: network and DNS volumes follow a weekly wave,
    # 1 + swing on Wednesday afternoons down to 1 - swing on Sunday mornings (UTC). 0: off.
    weekly_swing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weekly_swing < 1.0:
            raise OptionError("weekly_swing must be in [0, 1)")
        if self.connections_universe < 1:
            raise OptionError("connections_universe must be at least 1")
        if self.cases_universe < 0:
            raise OptionError("cases_universe must not be negative")
        if self.rate_limit < 1 or self.rate_limit_period < 1:
            raise OptionError("rate_limit and rate_limit_period must be at least 1")
        if self.cases_multi_group not in CASES_MULTI_GROUP_MODES:
            raise OptionError(f"cases_multi_group must be one of {CASES_MULTI_GROUP_MODES}")
        # Endpoint names are checked by the state, which knows them.
        object.__setattr__(self, "denied_endpoints", tuple(self.denied_endpoints))


@dataclass(frozen=True, slots=True)
class Fault:
    """A misbehaviour applied to the next `count` requests (forever when None).

    Fields not used by a kind are ignored:
    - status: `status` (default 500), `html` (default 403);
    - error_shape/detail: `status` (the body shape of the error);
    - seconds: `latency` delay, `drip` pause between chunks, `hang` upper bound
      (None = until the client gives up or the simulator stops);
    - reset_seconds: `rate_limit` (how long the endpoint keeps answering 429);
    - retry_after: `status` (a `Retry-After` header of that many seconds; None: no header);
    - chunk_size: `drip`;
    - size_bytes: `huge`;
    - body: `wrong_shape` (any JSON value; default `{"data": {"unexpected": 1}}`);
    - location: `redirect` (the Location header; `status` default 302);
    - raw_body, content_type: `raw`, which answers exactly these bytes with `status`
      (default 200) and this Content-Type, whatever they are: not JSON, not UTF-8, nested
      100,000 deep. Over the control API `raw_body` is base64. `raw_headers` are sent with
      it, over the simulator's own (rate-limit headers included): a hostile
      `X-RateLimit-Reset`, a `Retry-After` that is not a number.
    """

    kind: FaultKind
    count: int | None = None
    status: int | None = None
    error_shape: ErrorShape = "jsonapi"
    detail: str | None = None
    seconds: float | None = None
    reset_seconds: int = 10
    retry_after: int | None = None
    chunk_size: int = 16
    size_bytes: int = 100 * 1024 * 1024
    body: Any = None
    location: str = "https://elsewhere.example/"
    raw_body: bytes = b""
    content_type: str = "application/json"
    raw_headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise OptionError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.error_shape not in ERROR_SHAPES:
            raise OptionError(f"unknown error_shape {self.error_shape!r}")
        if self.count is not None and self.count < 1:
            raise OptionError("count must be at least 1 (or null for forever)")
        if self.status is not None and not 100 <= self.status <= 599:
            raise OptionError("status must be an HTTP status code")
        if self.seconds is not None and self.seconds < 0:
            raise OptionError("seconds must not be negative")
        if self.kind == "redirect" and not 300 <= self.http_status <= 399:
            raise OptionError("a redirect's status must be 3xx")
        if self.retry_after is not None and self.retry_after < 0:
            raise OptionError("retry_after must not be negative")
        if self.reset_seconds < 1 or self.chunk_size < 1 or self.size_bytes < 16:
            raise OptionError("reset_seconds, chunk_size and size_bytes must be positive")
        self._check_raw()

    def _check_raw(self) -> None:
        """What the ``raw`` kind sends: bytes, and headers that are one line each (a newline
        in a value would end the header early)."""
        if not isinstance(self.raw_body, bytes):
            raise OptionError("raw_body must be bytes (base64 over the control API)")
        if not _header_value(self.content_type):
            raise OptionError("content_type must be printable ASCII")
        for name, value in self.raw_headers.items():
            if not (isinstance(name, str) and _HEADER_NAME.fullmatch(name)):
                raise OptionError(f"raw_headers: {name!r} is not a header name")
            if not _header_value(value):
                raise OptionError(f"raw_headers: {name}'s value must be printable ASCII")

    @property
    def http_status(self) -> int:
        """The status the fault answers with (for kinds that pick one)."""
        if self.status is not None:
            return self.status
        defaults = {"status": 500, "html": 403, "rate_limit": 429, "redirect": 302}
        return defaults.get(self.kind, 200)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A data condition, not a fault: matching connections (or DNS flows) get worse metrics.

    `match` maps a tag key to a value the flow must carry (all must match).
    `factor` multiplies tcp_retransmits (retransmit_storm), rtt_micro_seconds
    (rtt_spike), tcp_resets / tcp_refusals / tcp_timeouts (resets_spike, refusals_spike,
    timeouts_spike) or a DNS flow's share of SERVFAIL answers, timeouts or NXDOMAIN answers
    (dns_servfail_spike, dns_timeout_spike, dns_nxdomain_spike); `dark` removes the
    matching connections (their traffic stops). The `dns_` kinds shape the DNS endpoint, the
    others the connections endpoint, but for the Network Health Insights kinds: their
    `factor` multiplies the failures of matching insights (nhi_dns_failure_burst,
    nhi_tcp_failure_burst, nhi_security_group_denial), or is the days a matching
    certificate has left at `start` (nhi_certificate_expiry).

    `start`/`end` (Unix seconds) bound it in time: it shapes the answers of windows whose
    `to` lies in [start, end), so history can hold an incident at a known time (None:
    from/until forever). With `blend`, a window that only partly overlaps [start, end) gets
    the time-weighted mix of the normal and the shaped answer, as real totals over a window
    would: an incident then shows gradually, as the window fills with it.
    """

    kind: ScenarioKind
    match: Mapping[str, str] = field(default_factory=dict)
    factor: float = 50.0
    start: int | None = None
    end: int | None = None
    blend: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise OptionError(
                f"unknown scenario kind {self.kind!r}; expected one of {SCENARIO_KINDS}"
            )
        if self.factor <= 0:
            raise OptionError("factor must be positive")
        for bound in (self.start, self.end):
            if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
                raise OptionError("start and end must be Unix seconds (integers)")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise OptionError("start must be before end")
        object.__setattr__(self, "match", dict(self.match))

    @property
    def endpoint(self) -> Literal["connections", "dns", "network_health"]:
        if self.kind.startswith("nhi_"):
            return "network_health"
        return "dns" if self.kind.startswith("dns_") else "connections"

    def active_at(self, to: int) -> bool:
        """Whether the scenario shapes a window ending at Unix time ``to``."""
        return (self.start is None or to >= self.start) and (self.end is None or to < self.end)

    def share_of(self, start: int, end: int) -> float:
        """How much of the window ``[start, end)`` the scenario shapes, from 0 to 1.

        Without `blend`, all of it or nothing (by `active_at(end)`); with it, the part of
        the window that overlaps the scenario's own ``[start, end)``."""
        if not self.blend or end <= start:
            return 1.0 if self.active_at(end) else 0.0
        low = start if self.start is None else max(start, self.start)
        high = end if self.end is None else min(end, self.end)
        return max(0.0, min(1.0, (high - low) / (end - start)))


def _from_mapping(cls: type[Any], raw: Mapping[str, Any], skip: set[str]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names - skip
    if unknown:
        raise OptionError(f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        return cls(**{k: v for k, v in raw.items() if k in names})
    except TypeError as exc:
        raise OptionError(str(exc)) from exc


def fault_from_json(raw: object) -> tuple[str, Fault]:
    """Parse `{"endpoint": "connections", "kind": "status", ...}` from the control API.

    The endpoint is checked where the fault is armed (`FaultBook.set`), which knows them.
    """
    if not isinstance(raw, dict):
        raise OptionError("expected a JSON object")
    endpoint = raw.get("endpoint", "*")
    if not isinstance(endpoint, str):
        raise OptionError("endpoint must be a string")
    if "raw_body" in raw:
        encoded = raw["raw_body"]
        if not isinstance(encoded, str):
            raise OptionError("raw_body must be a base64 string")
        try:
            raw = {**raw, "raw_body": base64.b64decode(encoded, validate=True)}
        except binascii.Error as exc:
            raise OptionError(f"raw_body is not base64: {exc}") from None
    fault = _from_mapping(Fault, raw, {"endpoint"})
    assert isinstance(fault, Fault)
    return endpoint, fault


def scenario_from_json(raw: object) -> Scenario:
    """Parse `{"kind": "retransmit_storm", "match": {...}, "factor": 50}`."""
    if not isinstance(raw, dict):
        raise OptionError("expected a JSON object")
    match = raw.get("match", {})
    if not isinstance(match, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in match.items()
    ):
        raise OptionError("match must be an object of string to string")
    scenario = _from_mapping(Scenario, raw, set())
    assert isinstance(scenario, Scenario)
    return scenario


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise OptionError(f"not a number: {text!r}") from exc


def fault_from_cli(spec: str) -> tuple[str, Fault]:
    """Parse `endpoint:kind[:arg]`, e.g. `connections:status:500`, `*:latency:2.5`.

    The optional arg is the status (status, html), seconds (latency, drip, hang),
    reset seconds (rate_limit), size in bytes (huge) or the Location (redirect; the
    rest of the spec, so it may contain colons: `*:redirect:https://elsewhere.example/`).
    """
    head = spec.split(":", 2)
    if len(head) >= 2 and head[1] == "redirect":
        location = {"location": head[2]} if len(head) == 3 else {}
        return fault_from_json({"endpoint": head[0], "kind": "redirect", **location})
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise OptionError(f"fault {spec!r}: expected endpoint:kind[:arg]")
    endpoint, kind = parts[0], parts[1]
    raw: dict[str, Any] = {"endpoint": endpoint, "kind": kind}
    if len(parts) == 3:
        value = _number(parts[2])
        if kind in ("status", "html"):
            raw["status"] = int(value)
        elif kind in ("latency", "drip", "hang"):
            raw["seconds"] = value
        elif kind == "rate_limit":
            raw["reset_seconds"] = int(value)
        elif kind == "huge":
            raw["size_bytes"] = int(value)
        else:
            raise OptionError(f"fault {spec!r}: kind {kind!r} takes no argument")
    return fault_from_json(raw)


def scenario_from_cli(spec: str) -> Scenario:
    """Parse `kind:key=value,key=value[:factor[:START-END]]` (START, END: Unix seconds)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3, 4):
        raise OptionError(f"scenario {spec!r}: expected kind:key=value,...[:factor[:START-END]]")
    match: dict[str, str] = {}
    for pair in filter(None, parts[1].split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"scenario {spec!r}: {pair!r} is not key=value")
        match[key] = value
    raw: dict[str, Any] = {"kind": parts[0], "match": match}
    if len(parts) >= 3:
        raw["factor"] = _number(parts[2])
    if len(parts) == 4:
        start, sep, end = parts[3].partition("-")
        if not sep or not start.isdigit() or not end.isdigit():
            raise OptionError(f"scenario {spec!r}: expected START-END in Unix seconds")
        raw["start"], raw["end"] = int(start), int(end)
    return scenario_from_json(raw)
