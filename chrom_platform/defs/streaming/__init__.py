"""The live InfluxDB series in the asset graph, their freshness and the live bridge sensor."""
