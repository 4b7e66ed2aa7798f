"""Storage and transport adapters, each an interface with a local and a cloud implementation:
object store, InfluxDB, warehouse, landing layout, queue."""
