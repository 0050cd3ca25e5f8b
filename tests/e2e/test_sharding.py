"""Sharded replicas of the installed CLI against the simulator: same series, same API cost."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from exporter.sharding import owner
from tests.helpers import (
    SampleKey,
    exporter_command,
    http_get,
    parse_metrics,
    start_exporter,
    start_simulator,
    wait_for,
)

pytestmark = pytest.mark.e2e

API_KEY = "shard-api-key-5f0c1d2e3a4b5c6d7e8f"
APP_KEY = "shard-app-key-0a9b8c7d6e5f4a3b2c1d"
# Each query is polled once: the hour-long interval makes "calls per interval" countable
# exactly instead of by timing.
GROUPINGS = {
    "pairs": ["client_service", "server_service"],
    "by_client": ["client_service"],
    "by_server": ["server_service"],
    "teams": ["client_team", "server_team"],
    "zones": ["client_availability_zone"],
    "namespaces": ["server_kube_namespace"],
    "envs": ["client_env", "server_env"],
    "hosts": ["client_host"],
    "protocols": ["network.protocol"],
}
CONFIG = "datadog: {timeout: 5s}\nconnections:\n" + "".join(
    f"  - {{name: {name}, group_by: [{', '.join(fields)}], limit: 200, interval: 1h}}\n"
    for name, fields in GROUPINGS.items()
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DD_", "EXPORTER_SHARD_")) and k not in ("POD_NAME", "HOSTNAME")
    }
    env.update(extra)
    return env


def all_up(base: str, expected: int) -> dict[SampleKey, float] | None:
    samples = parse_metrics(http_get(base + "/metrics").decode())
    ups = [v for (name, _), v in samples.items() if name == "datadog_exporter_up"]
    return samples if len(ups) == expected and all(v == 1.0 for v in ups) else None


def data_series(samples: dict[SampleKey, float]) -> set[SampleKey]:
    return {key for key in samples if key[0].startswith("datadog_cnm_")}


def polled_queries(simulator_url: str) -> list[str]:
    """Which configured query each logged request was, told apart by its group_by."""
    log = json.loads(http_get(simulator_url + "/_simulator/requests"))["requests"]
    by_grouping = {",".join(fields): name for name, fields in GROUPINGS.items()}
    return [by_grouping[record["query"]["group_by"]] for record in log]


def test_three_shards_export_exactly_what_one_replica_does(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG)
    owners = {name: owner(("default", "connections", name), 3) for name in GROUPINGS}
    assert set(owners.values()) == {0, 1, 2}, "every shard should own something here"

    single_sim, single_url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    shard_sim, shard_url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    keys = {"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY}
    processes = []
    try:
        single, single_base = start_exporter(
            tmp_path, "--config.file", str(config), env=clean_env(DD_API_URL=single_url, **keys)
        )
        processes.append(single)
        # The three ways a replica learns its index: flag, variable, StatefulSet pod name.
        shard_setups = [
            (["--shard.index", "0", "--shard.count", "3"], {}),
            (["--shard.count", "3"], {"EXPORTER_SHARD_INDEX": "1"}),
            ([], {"EXPORTER_SHARD_COUNT": "3", "POD_NAME": "datadog-cnm-exporter-2"}),
        ]
        shard_bases = []
        for args, extra in shard_setups:
            process, base = start_exporter(
                tmp_path,
                "--config.file",
                str(config),
                *args,
                env=clean_env(DD_API_URL=shard_url, **keys, **extra),
            )
            processes.append(process)
            shard_bases.append(base)

        unsharded = wait_for(
            lambda: all_up(single_base, len(GROUPINGS)), timeout=40, what="unsharded up"
        )
        sharded = [
            wait_for(
                functools.partial(all_up, base, list(owners.values()).count(index)),
                timeout=40,
                what=f"shard {index} up",
            )
            for index, base in enumerate(shard_bases)
        ]

        # The union of the shards' data series is the unsharded set, and none appears twice.
        per_shard = [data_series(samples) for samples in sharded]
        assert sum(len(series) for series in per_shard) == len(set().union(*per_shard))
        assert set().union(*per_shard) == data_series(unsharded)
        assert len(data_series(unsharded)) > 100

        for index, samples in enumerate(sharded):
            queries = {
                dict(labels)["query"] for name, labels in samples if name == "datadog_exporter_up"
            }
            assert queries == {q for q, shard in owners.items() if shard == index}
            assert samples[("datadog_exporter_shard_info", frozenset({
                ("index", str(index)), ("count", "3")}))] == 1.0  # fmt: skip
            assert samples[("datadog_exporter_shards", frozenset())] == 3
            assert samples[("datadog_exporter_owned_queries", frozenset())] == len(queries)
            assert samples[("datadog_exporter_configured_queries", frozenset())] == len(GROUPINGS)
            landing = http_get(shard_bases[index] + "/").decode()
            assert f"Shard {index} of 3" in landing
            assert f"polls {len(queries)} of the {len(GROUPINGS)} configured queries" in landing

        # Unsharded is shard 0 of 1: what DatadogExporterShardsMissing sees as a complete set.
        assert unsharded[("datadog_exporter_shard_info", frozenset({
            ("index", "0"), ("count", "1")}))] == 1.0  # fmt: skip
        assert unsharded[("datadog_exporter_shards", frozenset())] == 1

        # One interval's API calls: the shards together make exactly the unsharded calls.
        assert sorted(polled_queries(shard_url)) == sorted(polled_queries(single_url))
        assert sorted(polled_queries(single_url)) == sorted(GROUPINGS)
    finally:
        codes = [process.terminate() for process in processes]
        single_sim.terminate()
        shard_sim.terminate()
    assert codes == [0, 0, 0, 0], [p.output() for p in processes]


def test_config_check_prints_the_assignment_and_calls_per_shard(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG)
    check = [*exporter_command(), "--config.file", str(config), "--config.check"]
    for count in (3, 4):
        result = subprocess.run(
            [*check, "--shard.count", str(count)],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert result.returncode == 0, result.stderr
        printed = {
            match.group(2): int(shard)
            for shard, block in re.findall(
                r"shard (\d+): \d+ queries\n((?:    .*\n?)*)", result.stdout
            )
            for match in re.finditer(r"(default)\s+connections\s+(\S+)", block)
        }
        assert printed == {
            name: owner(("default", "connections", name), count) for name in GROUPINGS
        }
        # Every query polls once an hour, so a shard's calls per hour are its query count.
        for shard in range(count):
            owned = list(printed.values()).count(shard)
            if owned:
                assert re.search(
                    rf"shard {shard}\s+default\s+connections\s+{owned}\n", result.stdout + "\n"
                )


def test_shard_count_without_an_index_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [*exporter_command(), "--config.file", str(config), "--shard.count", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(HOSTNAME="datadog-cnm-exporter-7d9f8c6b5-x2k4q"),
    )
    assert result.returncode == 2
    assert "no shard index was given" in result.stderr and "Traceback" not in result.stderr
