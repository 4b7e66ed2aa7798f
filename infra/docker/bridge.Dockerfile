# The live bridge and the landing consumer (Cloud Run worker pools, infra/gcp):
#   docker build -f infra/docker/bridge.Dockerfile -t <region>-docker.pkg.dev/<project>/chrom/chrom-platform:<tag> .
# Same locked environment as development (uv.lock); no dev tools, no dbt target files.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY chrom_platform chrom_platform
COPY simulator simulator
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 chrom
WORKDIR /app
COPY --from=build --chown=chrom /app /app
ENV PATH=/app/.venv/bin:$PATH CHROM_PROFILE=gcp PYTHONUNBUFFERED=1
USER chrom
# SIGTERM from Cloud Run stops the loop after the batch in hand is written and acked
ENTRYPOINT ["chrom-bridge"]
CMD ["serve"]
