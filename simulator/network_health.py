"""Network Health Insights (``GET /api/v2/network-health-insights``): what the simulator
answers for a window, as data (pure, no I/O, no clock).

Datadog has no recorded answer of this preview endpoint; the shape follows its documented
model (``datadog_api_client.v2.model.network_health_insight*``). What it cannot say, the
simulator picks and docs/simulator.md states: which insights exist, the tcp failure type
(``timeout``), that every certificate is listed (``expiring_soon`` while days remain).

Answers depend only on ``[from, to]`` and the scenarios that cover it, so past windows
(the backfill) get the same answer as a live poll of that window did:

- a few DNS, TCP and security-group insights whose requests follow the CNM data's
  five-minute pattern and daily rhythm (see ``data.time_factor``), with low failure rates
  (two of them, one DNS and one TCP, under a request a second: below the alerts' volume
  floors);
- certificates whose days until expiry run down one a day and renew at 30 days left;
- scenarios: ``nhi_dns_failure_burst``, ``nhi_tcp_failure_burst`` and
  ``nhi_security_group_denial`` multiply the failures of the matching insights of their
  category by ``factor`` (adding an insight for the matched service pair when none
  exists); with ``blend`` a window only partly covered gets the time-weighted mix of the
  failures with and without them (the requests are the window's either way), the largest
  share among the partly covering ones, as the CNM endpoints mix their rows.
  ``nhi_certificate_expiry`` makes the matching certificates (by ``domain_name``; all when
  ``match`` is empty) have ``factor`` days left at the scenario's ``start``, one fewer each
  day after, ``expired`` from 0 on: days left are a state at ``to``, not a total over the
  window, so a certificate scenario shapes the windows whose ``to`` it covers, blended or
  not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from simulator.data import BUCKET_SECONDS, DAY_SECONDS, NA, daily_factor, time_factor
from simulator.errors import ErrorAnswer
from simulator.options import Scenario
from simulator.params import int_param

PATH = "/api/v2/network-health-insights"
DEFAULT_WINDOW = 15 * 60
TYPE = "network-health-insights"
# Days of validity of the simulated certificates, and when they are renewed.
CERTIFICATE_DAYS = 90
RENEWED_AT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Failure:
    """A pair of services with failures of one category and type, per second."""

    category: str
    failure_type: str
    client_service: str
    server_service: str
    requests_per_second: float
    failure_share: float  # 0..1
    dns_query: str | None = None
    dns_server: str | None = None


@dataclass(frozen=True, slots=True)
class Certificate:
    domain_name: str
    client_service: str
    server_service: str
    certificate_id: str
    offset_days: int  # where in its renewal cycle it is on day 0
    account_id: str = "123456789012"
    region: str = "us-east-1"


FAILURES: tuple[Failure, ...] = (
    Failure(
        "dns", "nxdomain", "checkout", "coredns", 40.0, 0.004, "does-not-exist.internal", "10.2.0.1"
    ),
    Failure("dns", "timeout", "frontend", "coredns", 25.0, 0.002, "api.stripe.com", "10.2.0.2"),
    Failure("dns", "servfail", "search", NA, 8.0, 0.001, "münchen.example", "10.2.0.3"),
    Failure("tcp", "timeout", "api-gateway", "inventory", 60.0, 0.003),
    Failure("tcp", "timeout", 'legacy "quoted" svc', "postgres-main", 5.0, 0.002),
    Failure("security-group", "denied", "shipping", "redis-cache", 3.0, 0.001),
    # Quiet pairs: their failure ratios swing on a handful of requests (volume floors).
    Failure(
        "dns", "nxdomain", "nightly-reports", "coredns", 0.2, 0.01, "old-db.internal", "10.2.0.1"
    ),
    Failure("tcp", "timeout", "cron", "smtp-relay", 0.2, 0.01),
)
CERTIFICATES: tuple[Certificate, ...] = (
    Certificate("shop.example.com", "frontend", "api-gateway", "cert-0001", 0),
    Certificate("api.example.com", "api-gateway", "checkout", "cert-0002", 11),
    Certificate("東京.example.jp", "search", "recommendations", "cert-0003", 23),
)
FAILURE_KINDS = {
    "nhi_dns_failure_burst": "dns",
    "nhi_tcp_failure_burst": "tcp",
    "nhi_security_group_denial": "security-group",
}


def parse_window(params: Mapping[str, str], now: int) -> tuple[int, int]:
    """``from`` and ``to`` as the endpoint reads them (strings of Unix seconds; 400 if not)."""

    def read(name: str) -> int | None:
        return int_param(params, name, title="Bad Request", must_be="Unix seconds")

    end = read("to")
    end = now if end is None else end
    start = read("from")
    start = end - DEFAULT_WINDOW if start is None else start
    if start >= end:
        raise ErrorAnswer(400, "Bad Request", f"from ({start}) must be before to ({end})")
    return start, end


def _matches(scenario: Scenario, attributes: Mapping[str, Any]) -> bool:
    return all(attributes.get(key) == value for key, value in scenario.match.items())


def _failure(
    item: Failure,
    window: int,
    bucket: int,
    factor: float,
    *,
    shaped: float = 1.0,
    weight: float = 0.0,
) -> dict[str, Any]:
    """The insight's attributes: failures multiplied by ``factor``, and a ``weight`` share
    of the window by ``shaped`` on top (the part a blending scenario covers)."""
    phase = (sum(map(ord, item.client_service + item.category)) % 6283) / 1000.0
    requests = max(
        1,
        int(item.requests_per_second * window * time_factor(bucket, phase) * daily_factor(bucket)),
    )

    def failed(multiplier: float) -> int:
        return min(requests, math.ceil(requests * item.failure_share * multiplier))

    failures = failed(factor)
    if weight > 0.0:
        failures = round(failures * (1 - weight) + failed(factor * shaped) * weight)
    attributes: dict[str, Any] = {
        "type": item.category,
        "failure_type": item.failure_type,
        "client_service": item.client_service,
        "server_service": item.server_service,
        "failure_magnitude": failures,
        "failure_rate": round(100.0 * failures / requests, 4),
        "total_requests": requests,
        "traffic_volume": {
            "bytes_read": requests * 180,
            "bytes_written": requests * 420,
            "total_traffic": requests * 600,
        },
    }
    if item.dns_query is not None:
        attributes["dns_query"] = item.dns_query
        attributes["dns_server"] = item.dns_server
    return attributes


def _days_left(certificate: Certificate, end: int) -> int:
    cycle = CERTIFICATE_DAYS - RENEWED_AT_DAYS
    return RENEWED_AT_DAYS + (cycle - 1) - (end // DAY_SECONDS + certificate.offset_days) % cycle


def _certificate(
    certificate: Certificate, end: int, scenarios: Sequence[Scenario]
) -> dict[str, Any]:
    days = _days_left(certificate, end)
    for scenario in scenarios:
        if scenario.kind == "nhi_certificate_expiry" and _matches(
            scenario, {"domain_name": certificate.domain_name}
        ):
            elapsed = 0 if scenario.start is None else (end - scenario.start) // DAY_SECONDS
            days = math.floor(scenario.factor) - elapsed
    used = min(100.0, max(0.0, 100.0 * (CERTIFICATE_DAYS - days) / CERTIFICATE_DAYS))
    return {
        "type": "tls-cert",
        "failure_type": "expired" if days <= 0 else "expiring_soon",
        "client_service": certificate.client_service,
        "server_service": certificate.server_service,
        "domain_name": certificate.domain_name,
        "certificate_id": (
            f"arn:aws:acm:{certificate.region}:{certificate.account_id}:certificate/"
            f"{certificate.certificate_id}"
        ),
        "days_until_expiration": days,
        "certificate_lifetime_percent": round(used, 2),
        "account_id": certificate.account_id,
        "client_region": certificate.region,
        "server_region": certificate.region,
        "loadbalancer_id": (
            f"arn:aws:elasticloadbalancing:{certificate.region}:{certificate.account_id}:"
            f"loadbalancer/app/{certificate.server_service.encode('ascii', 'replace').decode()}"
        ),
    }


def insights(start: int, end: int, scenarios: Sequence[Scenario] = ()) -> list[dict[str, Any]]:
    """The insights of window ``[start, end]`` (attributes only, in answer order)."""
    window, bucket = end - start, end // BUCKET_SECONDS
    # The failure scenarios that shape the window, with the share of it they cover.
    shaping = [
        (scenario, share)
        for scenario in scenarios
        if scenario.kind in FAILURE_KINDS and (share := scenario.share_of(start, end)) > 0.0
    ]
    out = []
    matched: set[int] = set()
    for item in FAILURES:
        factor, shaped, weight = 1.0, 1.0, 0.0
        for index, (scenario, share) in enumerate(shaping):
            if FAILURE_KINDS[scenario.kind] == item.category and _matches(scenario, vars_of(item)):
                matched.add(index)
                if share >= 1.0:
                    factor *= scenario.factor
                else:
                    shaped *= scenario.factor
                    weight = max(weight, share)
        out.append(_failure(item, window, bucket, factor, shaped=shaped, weight=weight))
    for index, (scenario, share) in enumerate(shaping):
        if index in matched:
            continue
        kind = FAILURE_KINDS[scenario.kind]
        # A burst or denial between services that had no such insight: one appears (with
        # the pair's requests over the whole window, its failures where the scenario is).
        added = Failure(
            kind,
            {"dns": "general_failure", "tcp": "timeout"}.get(kind, "denied"),
            scenario.match.get("client_service", "batch-jobs"),
            scenario.match.get("server_service", "postgres-main"),
            10.0,
            0.001,
            scenario.match.get("dns_query") if kind == "dns" else None,
            "10.2.0.1" if kind == "dns" else None,
        )
        if share >= 1.0:
            out.append(_failure(added, window, bucket, scenario.factor))
        else:
            out.append(_failure(added, window, bucket, 1.0, shaped=scenario.factor, weight=share))
    current = [s for s in scenarios if s.active_at(end)]
    out.extend(_certificate(certificate, end, current) for certificate in CERTIFICATES)
    return out


def vars_of(item: Failure) -> dict[str, Any]:
    """A failure's attributes as a scenario's ``match`` reads them."""
    return {
        "type": item.category,
        "failure_type": item.failure_type,
        "client_service": item.client_service,
        "server_service": item.server_service,
        "dns_query": item.dns_query,
    }


def answer(start: int, end: int, scenarios: Sequence[Scenario] = ()) -> bytes:
    """The JSON body the endpoint answers for the window."""
    data = [
        {"id": f"nhi-{index:04d}-{end}", "type": TYPE, "attributes": attributes}
        for index, attributes in enumerate(insights(start, end, scenarios))
    ]
    return msgspec.json.encode({"data": data})
