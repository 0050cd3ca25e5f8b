"""``datadog-cnm-exporter backfill``: Datadog's CNM history as OpenMetrics files for promtool.

Layers, from pure to I/O:

- ``timespec``, ``grid``: the TIME grammar, the step grid, the API budget projection (pure);
- ``openmetrics``: sample lines and files in the OpenMetrics text format (pure);
- ``journal``: the on-disk spool and journal that makes runs resumable (sqlite);
- ``source``: the one adapter to the collectors, the Datadog client and rate-limit pacing;
- ``progress``: a bar on a terminal, log lines otherwise;
- ``run``: fetching every window and writing every day; ``cli``: the subcommand.
"""
