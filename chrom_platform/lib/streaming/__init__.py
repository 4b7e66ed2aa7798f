"""The streaming path: decoding reading messages, the live bridge to InfluxDB, the landing
consumer, live freshness, and opening them from settings."""
