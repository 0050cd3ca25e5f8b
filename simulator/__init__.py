"""A stand-in for the Datadog API, shared by `--demo`, the tests and the benchmarks.

Serves the four aggregate endpoints the exporter polls with deterministic data,
Datadog's validation and error shapes, rate-limit headers, and switchable
faults and data scenarios. It must not import the exporter's other modules.
"""

from simulator.options import Fault, Scenario, SimulatorOptions
from simulator.simulator import Simulator
from simulator.state import RequestRecord

__all__ = ["Fault", "RequestRecord", "Scenario", "Simulator", "SimulatorOptions"]
