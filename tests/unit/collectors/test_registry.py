"""The collector registry is the one list of collectors: the configuration model, the jobs,
the catalog, the rate-limit keys and --config.check all agree with it, and a collector that
is registered without its section (or a section without a collector) fails loudly."""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any, ClassVar

import pytest
import yaml
from pydantic import Field, ValidationError

from exporter import collectors
from exporter.app import build_jobs
from exporter.catalog import data_metric_names
from exporter.collectors.helpers import PolledJob
from exporter.collectors.registry import (
    BY_SECTION,
    CNM_ENDPOINTS,
    REGISTRY,
    ApiArea,
    RegistryMismatch,
    check_sections,
)
from exporter.config.errors import ConfigError, problems_from
from exporter.config.report import COLUMN, summary
from exporter.config.schema import (
    Config,
    PolledQuery,
    TimeWindowQuery,
    parse_config,
    query_endpoints,
    query_sections,
)
from tests.helpers import EXAMPLE_QUERIES


def config_text(queries: dict[str, list[dict[str, Any]]], **top: Any) -> str:
    return yaml.safe_dump({**top, **queries})


def test_every_registered_collector_has_an_example_here() -> None:
    assert set(EXAMPLE_QUERIES) == set(BY_SECTION)


def test_the_registry_matches_the_config_model_one_to_one() -> None:
    check_sections(REGISTRY, Config)
    assert {entry.section: entry.query for entry in REGISTRY} == query_sections(Config)
    assert {entry.endpoint for entry in REGISTRY} == set(query_endpoints(Config))


def test_every_configured_query_becomes_a_job_of_its_collector() -> None:
    config = parse_config(config_text({section: [q] for section, q in EXAMPLE_QUERIES.items()}))
    jobs = build_jobs(config)
    assert [(job.collector, job.name) for job in jobs] == [
        (section, q.name) for section, q in config.all_queries()
    ]
    for job in jobs:
        entry = BY_SECTION[job.collector]
        assert job.endpoint == entry.endpoint == job.request(0).endpoint
        assert isinstance(job, PolledJob) and isinstance(job.settings, entry.query)


def test_the_catalog_is_every_family_the_collector_modules_declare() -> None:
    """Found by walking the collectors package, not through the registry: a collector module
    left out of the registry, or an entry given another module's families, fails here."""
    modules = [
        importlib.import_module(f"{collectors.__name__}.{info.name}")
        for info in pkgutil.iter_modules(collectors.__path__)
    ]
    declared = [module for module in modules if hasattr(module, "FAMILIES")]
    assert len(declared) == len(REGISTRY)
    for module in declared:
        (entry,) = [e for e in REGISTRY if e.job.__module__ == module.__name__]
        assert entry.families == module.FAMILIES, module.__name__
    assert data_metric_names() == {f.name for m in declared for f in m.FAMILIES}


@pytest.mark.parametrize("section", sorted(EXAMPLE_QUERIES))
def test_every_section_refuses_duplicate_names(section: str) -> None:
    query = EXAMPLE_QUERIES[section]
    twice = [query, {**query, "entity": "other"} if section == "audience" else query]
    with pytest.raises(ConfigError) as caught:
        parse_config(config_text({section: twice}))
    assert (f"{section}[1].name", "duplicate name 'q'") in caught.value.problems


@pytest.mark.parametrize("section", sorted(EXAMPLE_QUERIES))
def test_every_section_checks_its_accounts(section: str) -> None:
    accounts = [
        {"name": "eu", "api_key_env": "A", "app_key_env": "B"},
        {"name": "us", "api_key_env": "C", "app_key_env": "D"},
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(config_text({section: [EXAMPLE_QUERIES[section]]}, accounts=accounts))
    ((path, message),) = caught.value.problems
    assert path == f"{section}[0].account" and "required when several accounts" in message
    unknown = {**EXAMPLE_QUERIES[section], "account": "mars"}
    with pytest.raises(ConfigError, match=rf"{section}\[0\]\.account: unknown account 'mars'"):
        parse_config(config_text({section: [unknown]}, accounts=accounts))


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda entry: entry.section)
def test_every_endpoint_takes_a_rate_limit_and_others_are_refused(entry: ApiArea) -> None:
    limits = {entry.endpoint: {"limit": 60, "period": "1m"}}
    config = parse_config(
        config_text(
            {entry.section: [EXAMPLE_QUERIES[entry.section]]}, datadog={"rate_limits": limits}
        )
    )
    text = summary(config)
    line = rf"default\s+{entry.endpoint}\s+\d+\s+\(at worst \d+\)\s+of 3600 allowed"
    assert re.search(line, text), text
    assert f"  {entry.section:<{COLUMN}} q " in text
    with pytest.raises(ConfigError, match=r"datadog\.rate_limits\.metrics: unknown endpoint"):
        parse_config(config_text({}, datadog={"rate_limits": {"metrics": limits[entry.endpoint]}}))


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda entry: entry.section)
def test_history_is_flagged_where_a_request_can_ask_for_a_past_window(entry: ApiArea) -> None:
    """History means a window in the past can be asked for: the request a job makes for a
    moment names the window that ends then. Derived from the requests, not from a list."""
    query = entry.query.model_validate(EXAMPLE_QUERIES[entry.section])
    job = entry.job(query, "default", False)
    now, day_before = 1_800_000_000.0, 1_800_000_000.0 - 86_400
    asks_for_the_past = job.request(day_before).params.get("to") == str(int(day_before))
    assert entry.history == asks_for_the_past
    assert entry.history == (job.request(now) != job.request(day_before))
    assert entry.history == issubclass(entry.query, TimeWindowQuery)


@pytest.mark.parametrize("entry", REGISTRY, ids=lambda entry: entry.section)
def test_cnm_is_flagged_on_the_network_endpoints(entry: ApiArea) -> None:
    """Cloud Network Monitoring is the /api/v2/network/ API: those endpoints, and only they,
    can answer an organisation without CNM with a bare 400."""
    query = entry.query.model_validate(EXAMPLE_QUERIES[entry.section])
    path = entry.job(query, "default", False).request(0).path
    assert entry.cnm == path.startswith("/api/v2/network/")
    assert (entry.endpoint in CNM_ENDPOINTS) == entry.cnm


# A fifth API area, as a newcomer might half-add it.
class MonitorsQuery(PolledQuery):
    section: ClassVar[str] = "monitors"
    endpoint: ClassVar[str] = "monitors"


class WithMonitors(Config):
    monitors: list[MonitorsQuery] = Field(default_factory=list)


MONITORS = ApiArea(
    MonitorsQuery, REGISTRY[0].job, (), history=False, permission=REGISTRY[0].permission
)


def test_a_section_without_a_collector_is_refused() -> None:
    with pytest.raises(RegistryMismatch, match=r"'monitors'.*would validate and never be polled"):
        check_sections(REGISTRY, WithMonitors)


def test_a_collector_without_a_section_is_refused() -> None:
    with pytest.raises(RegistryMismatch, match="collector 'monitors' has no section in Config"):
        check_sections((*REGISTRY, MONITORS), Config)


def test_a_collector_registered_twice_is_refused() -> None:
    with pytest.raises(RegistryMismatch, match="collector 'dns' is registered twice"):
        check_sections((*REGISTRY, REGISTRY[1]), Config)


def test_checks_and_listings_find_a_new_section_without_being_told() -> None:
    # Name uniqueness, account checks and all_queries() read the sections from the model
    # itself, so a new section gets them all (before, a hand-kept list had to name it).
    raw = {"monitors": [{"name": "m"}, {"name": "m"}]}
    with pytest.raises(ValidationError) as caught:
        WithMonitors.model_validate(raw)
    assert problems_from(caught.value, raw) == [("monitors[1].name", "duplicate name 'm'")]
    raw = {"monitors": [{"name": "m", "account": "mars"}]}
    with pytest.raises(ValidationError) as caught:
        WithMonitors.model_validate(raw)
    ((path, message),) = problems_from(caught.value, raw)
    assert (path, message.split(" (")[0]) == ("monitors[0].account", "unknown account 'mars'")
    config = WithMonitors.model_validate({"monitors": [{"name": "m"}]})
    assert [(section, q.name) for section, q in config.all_queries()] == [("monitors", "m")]
    assert list(query_sections(WithMonitors))[-1] == "monitors"


def test_a_section_must_be_named_as_its_query_model_says() -> None:
    class Misnamed(Config):
        monitor: list[MonitorsQuery] = Field(default_factory=list)

    with pytest.raises(TypeError, match=r"Misnamed\.monitor holds MonitorsQuery"):
        query_sections(Misnamed)
