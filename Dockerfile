# One image for every role: `agent-eval serve` by default; a Deployment picks another role by its
# args (`consume executor|scorer|biller|notifier`, `relay`, `migrate`, `kafka init`, ...).
#
#   docker build -t agent-eval .                 # or: buildah bud --layers -t agent-eval .
#   docker run --read-only --tmpfs /tmp -e AGENT_EVAL_DATABASE_URL=... agent-eval
#
# The base is an argument so a platform team can build on its own Python base (`make image-test`
# builds one with debootstrap). The build stages and the runtime all start FROM it: the
# virtualenv made in `deps` points at the base's interpreter, which the runtime must have at the
# same path. Any Debian-like base with python3 (>= 3.11), python3-venv and ca-certificates will do.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS deps

# UV_SYSTEM_CERTS and PIP_CERT: build steps trust the base's CA store, so a base that carries a
# corporate or egress-proxy CA builds behind that proxy. Nothing of the build stages'
# environment reaches the runtime stage.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/agent-eval \
    UV_SYSTEM_CERTS=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# uv, pinned like pyproject's [tool.uv] required-version, in a virtualenv of its own that stays
# in this stage (the base needs no pip of its own: python3-venv brings one).
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install uv==0.13.9

WORKDIR /src

# Dependencies first, from the lock alone: this stage is rebuilt only when uv.lock or
# pyproject.toml change, and the runtime copies it as a layer of its own.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-project --no-editable


FROM deps AS app

# Then the code, installed as a wheel (not editable) into the same virtualenv; hatchling reads
# README.md for the package metadata. Its files (the three packages with their bytecode, the
# dist-info, the console script) are gathered under /app at their final paths, so a code change
# makes a small runtime layer and leaves the dependency layer as it was.
COPY README.md ./
COPY schemas ./schemas
COPY service ./service
COPY consumers ./consumers
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable
RUN site="$(/opt/agent-eval/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && mkdir -p "/app$site" /app/opt/agent-eval/bin \
    && cp -a "$site"/service "$site"/consumers "$site"/schemas "$site"/agent_eval-*.dist-info "/app$site/" \
    && cp -a /opt/agent-eval/bin/agent-eval /app/opt/agent-eval/bin/


FROM ${BASE_IMAGE} AS runtime

ARG BASE_IMAGE
ARG VERSION=dev
LABEL org.opencontainers.image.title="agent-eval" \
      org.opencontainers.image.description="Self-hostable, Kafka-native service that runs conversational agent evals" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# No installer in the runtime: python:*-slim bases ship pip, setuptools and wheel in the system
# interpreter (a debootstrap base has none), so they go. No compilers are in either kind of base.
RUN if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel; \
    fi

COPY --from=deps /opt/agent-eval /opt/agent-eval
COPY --from=app /app/ /

# Read-only root filesystem: the bytecode was compiled at build time and none is written at run
# time; HOME (and so `agent-eval dev`'s default data dir) is under /tmp, the one writable path.
# AGENT_EVAL_HOST: the gateway listens on the pod's address, not only on loopback.
ENV PATH=/opt/agent-eval/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    AGENT_EVAL_HOST=0.0.0.0

# A numeric user (no passwd entry needed), so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /tmp

# 8080: the API (`serve`); 9100: /healthz, /readyz and /metrics of the other roles.
EXPOSE 8080 9100

# No HEALTHCHECK: Kubernetes ignores it; the chart's liveness and readiness probes call
# /healthz and /readyz.
ENTRYPOINT ["agent-eval"]
CMD ["serve"]
