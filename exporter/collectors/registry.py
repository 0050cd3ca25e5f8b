"""The collector registry: one entry per Datadog API area, the one list of collectors.

Everything that lists collectors derives from :data:`REGISTRY`: the jobs built from a
configuration (``app.build_jobs``), the metric catalog, ``--config.check``, the
``datadog.rate_limits`` keys and the endpoints whose bare 400 means "no Cloud Network
Monitoring". The configuration model keeps one ``list[<query model>]`` field per section
(``exporter.config`` must not import the collectors); this module refuses to load unless
those fields and the entries match one to one, so a section cannot validate and stay
unpolled, and an entry cannot lack its section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..config.schema import (
    AudienceQuery,
    CasesQuery,
    Config,
    ConnectionsQuery,
    DnsQuery,
    NetworkHealthQuery,
    PolledQuery,
    query_sections,
)
from ..exposition import Family
from . import audience, cases, connections, dns, network_health
from .protocol import QueryJob

# Builds a query's job from its settings, its account and whether series carry the account.
JobFactory = Callable[[Any, str, bool], QueryJob]


@dataclass(frozen=True)
class Permission:
    """The Datadog permission an endpoint needs of the application key's user or service
    account, and how sure that is (Datadog documents it for some endpoints only)."""

    name: str
    inferred: bool  # True: not stated for this endpoint; read from Datadog's permission list
    source: str  # where the name comes from, shown in hints and the docs


@dataclass(frozen=True)
class ApiArea:
    """What the exporter knows about one API area."""

    query: type[PolledQuery]  # the model of one query of its section; names section, endpoint
    job: JobFactory  # the job class: request, decode, render
    families: tuple[Family, ...]  # every family its answers can render (the catalog)
    # Whether the endpoint answers for a past window (``from``/``to``): history can be fetched.
    history: bool
    # What a 403 answer most often means is missing (see datadog.rejections).
    permission: Permission
    # Whether Datadog answers a bare 400 when the organisation has no Cloud Network Monitoring.
    cnm: bool = False
    # The product and endpoint as the docs name them (the metrics reference's headings).
    title: str = ""

    @property
    def section(self) -> str:
        """The configuration section, and the ``collector`` label of the self-metrics."""
        return self.query.section

    @property
    def endpoint(self) -> str:
        """The Datadog endpoint polled: rate-limit state, self-metrics, ``rate_limits`` key."""
        return self.query.endpoint


# The RBAC permission "Read Cloud Network Connections"; which one the aggregate endpoints
# check is not stated in their reference.
_CNM_READ = Permission(
    "network_connections_read",
    inferred=True,
    source="inferred: Datadog's permission for reading Cloud Network Monitoring data",
)
REGISTRY: tuple[ApiArea, ...] = (
    ApiArea(
        ConnectionsQuery,
        connections.ConnectionsJob,
        connections.FAMILIES,
        history=True,
        permission=_CNM_READ,
        cnm=True,
        title="CNM connections",
    ),
    ApiArea(
        DnsQuery,
        dns.DnsJob,
        dns.FAMILIES,
        history=True,
        permission=_CNM_READ,
        cnm=True,
        title="CNM DNS",
    ),
    ApiArea(
        CasesQuery,
        cases.CasesJob,
        cases.FAMILIES,
        history=False,
        permission=Permission(
            "cases_read", inferred=False, source="documented: the endpoint's OAuth scope"
        ),
        title="Case Management",
    ),
    ApiArea(
        AudienceQuery,
        audience.AudienceJob,
        audience.FAMILIES,
        history=False,
        permission=Permission(
            "audience_management_read",
            inferred=True,
            source="inferred: Datadog's permission list; the endpoint's reference names none",
        ),
        title="RUM Audience Management",
    ),
    ApiArea(
        NetworkHealthQuery,
        network_health.NetworkHealthJob,
        network_health.FAMILIES,
        history=True,
        permission=Permission(
            "network_health_insights_read",
            inferred=False,
            source="documented: the endpoint's API reference",
        ),
        # Owned by the CNM team; whether an organisation without CNM gets the bare 400 of
        # the aggregate endpoints is not documented, so its 400s are read as they come.
        title="Network Health Insights",
    ),
)


class RegistryMismatch(Exception):
    """The registry and the configuration model disagree about the sections."""


def check_sections(registry: tuple[ApiArea, ...], model: type[BaseModel]) -> None:
    """Raise RegistryMismatch unless ``registry`` has one entry per query section of ``model``,
    with the same query model, and every section and endpoint is named once."""
    sections = query_sections(model)
    problems: list[str] = []
    names = [entry.section for entry in registry]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"collector {name!r} is registered twice")
    endpoints = [entry.endpoint for entry in registry]
    for name in sorted({n for n in endpoints if endpoints.count(n) > 1}):
        problems.append(f"endpoint {name!r} is registered twice")
    for entry in registry:
        if entry.section not in sections:
            problems.append(
                f"collector {entry.section!r} has no section in {model.__name__} "
                f"(add `{entry.section}: list[{entry.query.__name__}]`)"
            )
        elif sections[entry.section] is not entry.query:
            problems.append(
                f"section {entry.section!r} holds {sections[entry.section].__name__}, "
                f"the registry says {entry.query.__name__}"
            )
    for section, query in sections.items():
        if section not in names:
            problems.append(
                f"section {section!r} ({query.__name__}) has no collector: its queries would "
                "validate and never be polled"
            )
    if problems:
        raise RegistryMismatch("; ".join(problems))


check_sections(REGISTRY, Config)

BY_SECTION: dict[str, ApiArea] = {entry.section: entry for entry in REGISTRY}
# The endpoints of Cloud Network Monitoring: an organisation without CNM gets a bare 400.
CNM_ENDPOINTS = frozenset(entry.endpoint for entry in REGISTRY if entry.cnm)
BY_ENDPOINT: dict[str, ApiArea] = {entry.endpoint: entry for entry in REGISTRY}


def configured_jobs(config: Config) -> Iterator[QueryJob]:
    """One job per configured query, section by section, in file order."""
    for section, query in config.all_queries():
        yield BY_SECTION[section].job(query, config.account_of(query), config.account_label)
