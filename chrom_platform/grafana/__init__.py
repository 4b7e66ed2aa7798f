"""Grafana dashboards and alert rules as code (grafana-foundation-sdk).

`queries.py` holds every panel and alert query with the columns it returns, `boards.py`
the five dashboards, `alerts.py` the alert rules, `provisioning.py` the datasources, and
`generate.py` writes (or checks) the generated files under `infra/grafana/`:

    chrom dashboards           # regenerate infra/grafana/
    chrom dashboards --check   # exit 1 when the committed files differ from the code
"""
