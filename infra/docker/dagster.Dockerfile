# The Dagster code location (user deployment) for Kubernetes (infra/dagster/values.yaml) or
# Dagster+ hybrid:
#   docker build -f infra/docker/dagster.Dockerfile -t <registry>/chrom-dagster:<tag> .
# The dbt manifest is prepared at build time (DbtProject's packaged form), so the code
# location loads without running dbt parse on start.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY chrom_platform chrom_platform
COPY simulator simulator
COPY dbt_chrom dbt_chrom
COPY workspace.yaml ./
RUN uv sync --frozen --no-dev \
 && cd dbt_chrom && CHROM_DBT_TARGET=prod ../.venv/bin/dbt parse --profiles-dir . --quiet

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 chrom
WORKDIR /app
COPY --from=build --chown=chrom /app /app
ENV PATH=/app/.venv/bin:$PATH CHROM_PROFILE=gcp CHROM_DBT_TARGET=prod PYTHONUNBUFFERED=1
USER chrom
EXPOSE 3030
CMD ["dagster", "api", "grpc", "--module-name", "chrom_platform.definitions", "--host", "0.0.0.0", "--port", "3030"]
