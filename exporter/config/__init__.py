"""The configuration: schema, errors, accounts, the web configuration and the --config.check
report. Validated once at start (and on reload), then frozen."""
