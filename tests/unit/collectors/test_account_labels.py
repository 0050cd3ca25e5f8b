"""With an accounts: section, DNS, cases and audience series carry the account label too."""

from __future__ import annotations

import json

from exporter.app import build_jobs
from exporter.config.schema import parse_config
from tests.helpers import parse_metrics, render_body, rendered_text

CONFIG = """
accounts:
  - {name: eu, api_key_env: EU_API, app_key_env: EU_APP}
  - {name: us, api_key_env: US_API, app_key_env: US_APP}
dns: [{name: d, account: eu, group_by: [account]}]
cases: [{name: c, account: us, group_by: [status]}]
audience: [{entity: users, account: eu}, {entity: users, name: us_users, account: us}]
"""
ANSWERS = {
    "dns": {
        "data": [
            {
                "attributes": {
                    "group_bys": [{"key": "account", "value": "acme"}],
                    "metrics": [{"key": "dns_timeouts", "value": 2}],
                }
            }
        ]
    },
    "cases": {"data": {"attributes": {"total": 3, "groups": [{"group": "OPEN", "value": [3]}]}}},
    "audience": {
        "data": {
            "type": "list_connections_response",
            "attributes": {"connections": [{"id": "crm"}]},
        }
    },
}


def test_every_collector_labels_its_series_with_the_account() -> None:
    got: dict[str, set[frozenset[tuple[str, str]]]] = {}
    for job in build_jobs(parse_config(CONFIG)):
        text = rendered_text(render_body(job, json.dumps(ANSWERS[job.collector]).encode()))
        for (name, labels), _ in parse_metrics(text).items():
            got.setdefault(name, set()).add(labels)
    assert got["datadog_dns_timeouts"] == {
        frozenset({("query", "d"), ("account", "eu"), ("exported_account", "acme")})
    }
    assert got["datadog_cases_all_groups"] == {frozenset({("query", "c"), ("account", "us")})}
    # The same entity in two accounts: distinct series, told apart by account.
    assert got["datadog_audience_connections"] == {
        frozenset({("entity", "users"), ("account", "eu")}),
        frozenset({("entity", "users"), ("account", "us")}),
    }


def test_without_accounts_there_is_no_account_label() -> None:
    (job,) = build_jobs(parse_config("cases: [{name: c, group_by: [status]}]"))
    text = rendered_text(render_body(job, json.dumps(ANSWERS["cases"]).encode()))
    assert all("account" not in dict(labels) for _, labels in parse_metrics(text))


def test_max_series_drops_and_counts_what_does_not_fit() -> None:
    config = parse_config(
        """
dns: [{name: d, max_series: 3}]
cases: [{name: c, group_by: [status], max_series: 2}]
audience: [{entity: users, max_series: 5}]
"""
    )
    dns_rows = [
        {
            "attributes": {
                "group_bys": [{"key": "network.dns_query", "value": f"q{i}"}],
                "metrics": [
                    {"key": "dns_timeouts", "value": i},
                    {"key": "dns_failures", "value": i},
                ],
            }
        }
        for i in range(3)
    ]
    answers = {
        "dns": {"data": dns_rows},
        "cases": {
            "data": {
                "attributes": {
                    "total": 9,
                    "groups": [{"group": "A", "value": [5]}, {"group": "B", "value": [4]}],
                }
            }
        },
        "audience": {
            "data": {
                "attributes": {
                    "connections": [
                        {"id": "a", "fields": [], "created_at": "2024-01-01T00:00:00Z"},
                        # With a, 1 + 3 + 2 series: one past the limit.
                        {"id": "b", "fields": []},
                    ]
                }
            }
        },
    }
    for job in build_jobs(config):
        rendered = render_body(job, json.dumps(answers[job.collector]).encode())
        assert rendered.series <= job.settings.max_series  # type: ignore[attr-defined]
        assert rendered.dropped_rows == {"dns": 2, "cases": 1, "audience": 1}[job.collector]
        assert len(parse_metrics(rendered_text(rendered))) == rendered.series
