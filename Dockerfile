# The runledger services (decider, node, ...) for docker-compose.yml. Kafka is its own image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# README.md* so the build works before the readme exists (pyproject names it).
COPY pyproject.toml README.md* ./
COPY runledger ./runledger
COPY streams ./streams
COPY schemas ./schemas
COPY projections ./projections
COPY api ./api
COPY runners ./runners
RUN pip install .

# The node's DuckDB file lives in /data; a named volume there inherits this ownership.
RUN useradd --create-home --uid 10001 runledger \
    && mkdir /data \
    && chown runledger /data
USER runledger
ENV RUNLEDGER_DATA_DIR=/data \
    RUNLEDGER_HOST=0.0.0.0

CMD ["runledger", "--help"]
