"""Grafana dashboards in the asset graph, and the warehouse snapshot the local Grafana reads."""
