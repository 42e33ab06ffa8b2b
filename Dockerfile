# syntax=docker/dockerfile:1
# bybit-dcp-exporter: the wheel on a slim Debian Python, as a non-root user, no shell needed.
#
#   pip wheel --wheel-dir dist . && docker build -t bybit-dcp-exporter .
#
# dist/ holds the exporter's wheel and its dependencies' wheels (for the base image's Python),
# so the build needs no index and installs exactly what was tested.
# BASE_IMAGE must be a Debian-based Python 3.11+ image with the venv module; both stages use
# it so the virtual environment's interpreter exists at run time. Without a registry, a root
# filesystem made with mmdebstrap (python3, python3-venv, ca-certificates) works the same; see
# deploy/container/README.md.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
COPY dist/*.whl /tmp/wheels/
RUN python3 -m venv /opt/bybit-dcp-exporter \
 && /opt/bybit-dcp-exporter/bin/pip install --no-cache-dir --no-compile --no-index --find-links /tmp/wheels \
      bybit-dcp-exporter \
 && /opt/bybit-dcp-exporter/bin/pip uninstall -y pip \
 && /opt/bybit-dcp-exporter/bin/python -m compileall -q /opt/bybit-dcp-exporter

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bybit-dcp-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Bybit Disconnection Protect (DCP)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /opt/bybit-dcp-exporter /opt/bybit-dcp-exporter
# No HOME, cache or temporary files are written: the root filesystem can be read-only.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 9842
# Exec form: the exporter is PID 1 and gets SIGTERM itself (it exits 0).
ENTRYPOINT ["/opt/bybit-dcp-exporter/bin/bybit-dcp-exporter"]
