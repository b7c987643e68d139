# tradecore image: one image for every process (`tradecore run`, `tradecore serve`, the short-lived commands).
# Multi-stage: the build stage compiles wheels; the runtime stage holds only the virtualenv and runs as
# the unprivileged user `tradecore`. No secret is baked in: settings come from the environment at run time
# (deploy/compose.yaml, deploy/tradecore.env.example; docs/deployment.md).
#
#   docker build -t tradecore:local .
#   docker run --rm -e EVENTSTORE__URL=postgresql://... tradecore:local serve

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/tradecore
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY application ./application
COPY infrastructure ./infrastructure
COPY projections ./projections
COPY api ./api
RUN /opt/tradecore/bin/pip install .

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 tradecore \
    && useradd --system --uid 10001 --gid tradecore --home-dir /var/lib/tradecore --create-home tradecore
COPY --from=build /opt/tradecore /opt/tradecore
ENV PATH=/opt/tradecore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SYSTEM__LOG_FILE=- \
    SYSTEM__API_HOST=0.0.0.0 \
    SYSTEM__API_PORT=8080 \
    READMODEL__PATH=/var/lib/tradecore/readmodel.duckdb
WORKDIR /var/lib/tradecore
USER tradecore
EXPOSE 8080
# /health answers 200 when the node is fit to be trusted and 503 when not (docs/monitoring.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SYSTEM__API_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["tradecore"]
CMD ["serve"]
