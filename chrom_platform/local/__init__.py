"""Local tooling for the demo and the tests: a local InfluxDB server, the Dagster instance
config, the demo itself. Production does not import it."""
