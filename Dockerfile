# syntax=docker/dockerfile:1
# One image for the Python services: mimir-rls, mimir-overrides-sync and mimir-edge (the Helm
# charts pick the entry point with `command:`). Runs as a fixed non-root UID and writes nothing
# outside /tmp, so it works with readOnlyRootFilesystem.
#
# The Kubernetes client is the `sync` extra, needed only by overrides-sync's Kubernetes source and
# Lease election. `docker build --build-arg EXTRAS= .` makes an image without it for the RLS (and
# for overrides-sync on the file source): 159 MiB less site-packages, 102 MiB instead of 261 MiB,
# 25 fewer distributions (kubernetes alone is 125 MiB), measured as `du` of a python3.11 venv
# after `pip install --compile` of the wheel with and without [sync].

# --- build: the project's wheel and every dependency's wheel --------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the counting walker (hatch_build.py); the image already has Python's headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the wheel is built from (pyproject.toml [tool.hatch.build]): the Lua scripts and the
# demo's overrides are force-included into the wheel; hatch_build.py compiles the walker with
# tools/build_walker.py.
COPY pyproject.toml README.md hatch_build.py ./
COPY tools/build_walker.py ./tools/
COPY services ./services
COPY lua ./lua
COPY examples/overrides.yaml ./examples/
# Every wheel any EXTRAS choice below can need.
RUN pip wheel --wheel-dir /wheels '.[sync]'

# --- runtime ---------------------------------------------------------------------------------------
FROM python:3.11-slim
# sync (default): every entry point works; empty: no Kubernetes client (see the top of this file).
ARG EXTRAS=sync
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
# Install from the wheels only (no index), byte-compiled at install time because the root
# filesystem is read-only at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels --compile "mimir-edge-enforcement[${EXTRAS}]" \
    && groupadd --system --gid 10001 mimir \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin mimir
USER 10001:10001
WORKDIR /tmp
# RLS gRPC, RLS ext_authz over HTTP, RLS admin API/UI, RLS /metrics, overrides-sync /metrics /healthz /readyz.
EXPOSE 8081 8083 8082 9090 9091
CMD ["mimir-rls"]
