# syntax=docker/dockerfile:1
#
# Container image for datadog-cnm-exporter.
#
#   docker build -t datadog-cnm-exporter .
#   docker run --rm -p 10173:10173 -e DD_API_KEY -e DD_APP_KEY \
#     -v "$PWD/config.yml:/etc/datadog-cnm-exporter/config.yml:ro" datadog-cnm-exporter
#
# Extra flags append to the ENTRYPOINT, e.g. `docker run ... datadog-cnm-exporter --demo`.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: turn the source tree into wheels (ours and every dependency) -----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY simulator ./simulator
RUN pip wheel --wheel-dir /wheels .

# --- runtime: only the installed wheels, no compilers, no pip cache -----------
FROM ${PYTHON_IMAGE} AS runtime

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The wheels are bind-mounted from the build stage, so they never become a
# layer of this image; --no-index keeps the install from reaching the network.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/datadog_cnm_exporter-*.whl \
    && mkdir -p /etc/datadog-cnm-exporter

COPY --chmod=0444 deploy/kubernetes/base/config.yml /etc/datadog-cnm-exporter/config.yml

# A numeric user, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

EXPOSE 10173

# The CLI's default address, :10173, is all interfaces, as a container needs. It is
# not repeated here: --web.listen-address may be given several times (each adds an
# address), so one given to `docker run` replaces the default only if the
# entrypoint does not set it. Other flags given to `docker run` are appended and,
# being later on the command line, win.
ENTRYPOINT ["datadog-cnm-exporter", "--config.file=/etc/datadog-cnm-exporter/config.yml"]
