"""A stand-in for the Datadog API, shared by `--demo`, the tests and the benchmarks.

Serves the Datadog endpoints the exporter polls with deterministic data,
Datadog's validation and error shapes, rate-limit headers, and switchable
faults and data scenarios. A package of its own beside the exporter, installed with it: it
imports nothing of the exporter, and only the exporter's --demo imports it (pyproject.toml's
import-linter contracts).
"""

from simulator.options import Fault, Scenario, SimulatorOptions
from simulator.simulator import Simulator
from simulator.state import RequestRecord

__all__ = ["Fault", "RequestRecord", "Scenario", "Simulator", "SimulatorOptions"]
