# One image for every autopeft service: PostgreSQL client libs, Ray, the search and the dashboard.
# GPU nodes: build with a CUDA base image instead (BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 needs python3.11).
ARG BASE=python:3.11-slim
FROM ${BASE}
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/autopeft
COPY pyproject.toml README.md ./
COPY autopeft ./autopeft
COPY search_spaces ./search_spaces
COPY workers ./workers
COPY dashboard ./dashboard
# torch first (pick the wheel for your accelerator), then autopeft with the PostgreSQL driver.
# EXTRAS=postgres,adapters adds AdapterHub (the `autopeft` and `mixed` spaces; transformers 4.57 instead of 5.x).
ARG TORCH_SPEC="torch==2.13.0"
ARG EXTRAS="postgres"
RUN pip install "${TORCH_SPEC}" && pip install ".[${EXTRAS}]"
EXPOSE 6379 8265 8765
CMD ["autopeft", "--help"]
