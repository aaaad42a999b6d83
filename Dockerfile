# One image for every omnibot process; the command picks the role:
#   docker run omnibot run ingress|dialog|egress|admin|all    (default: run all)
#   docker run omnibot sandbox
# Build: docker build -t omnibot:latest .

# --- builder: resolve the locked runtime dependencies and install omnibot into /app/.venv ---
FROM python:3.11-slim AS builder

ARG UV_VERSION=0.13.*
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# The venv must live at the same path as in the final stage: its scripts hard-code the interpreter path.
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
# --no-dev keeps the dev group (pytest, mypy, the GPL-licensed secantusdb, ...) out of the image.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --no-install-project

# Then the project itself, as a regular (non-editable) wheel: the final stage has no source tree.
COPY shared/ shared/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- runtime: the venv only, run as an unprivileged user ---
FROM python:3.11-slim

# Numeric uid/gid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 omnibot \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin omnibot

# Owned by root and read-only for the service user: the code cannot be modified at run time.
COPY --from=builder /app/.venv /app/.venv

# Bytecode is compiled at build time; writing .pyc at run time would fail on a read-only root fs.
# OMNIBOT_DATA_DIR only matters in development mode; /tmp is the one writable place in the pods.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMNIBOT_DATA_DIR=/tmp/omnibot

WORKDIR /app
USER 10001:10001

# ingress (INGRESS_PORT), the admin API (ADMIN_PORT) and every role's monitoring listener
# (METRICS_PORT); the sandbox uses 8090 (SANDBOX_PORT).
EXPOSE 8080 8081 9090

# No HEALTHCHECK: docker-compose.yml and the Kubernetes probes define one per role, on the
# monitoring listener (METRICS_PORT, 9090: /healthz, /readyz); the webhook port serves no health.
ENTRYPOINT ["omnibot"]
CMD ["run", "all"]
