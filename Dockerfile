# The psmdb-backup-webhook image: one console script, `psmdb-backup` (serve, certs, lint, ...), as UID 10001.
#
#   docker build -t psmdb-backup-webhook:0.1.0 .
#   docker run --rm --read-only psmdb-backup-webhook:0.1.0 --version
#
# BASE is any image with Python 3.11+ and the venv module at the same path in both stages (the venv's python is a
# symlink into it): the public python:3.11-slim by default; the tests build from a local Debian image instead
# (--build-arg BASE=..., see /work/shared/reference/container-images.md in the project notes).
# Dependencies are installed as wheels only, at the versions pinned in constraints.txt: no compiler is needed or
# shipped, and no pip cache is kept.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY webhook/ webhook/
# webhook/schemas is a symlink to ../schemas (the JSON Schemas, package data): the target must be in the context too
COPY schemas/ schemas/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --constraint constraints.txt \
        /wheels/psmdb_backup_webhook-*.whl \
 && /opt/venv/bin/psmdb-backup --version \
 && /opt/venv/bin/python -c "from webhook.policy.schema import SCHEMA_FILES as S, load_schema as L; [L(k) for k in S]" \
 && /opt/venv/bin/python -m pip uninstall --yes pip setuptools \
 && rm -rf /wheels

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="psmdb-backup-webhook" \
      org.opencontainers.image.description="Admission webhooks, CI linter and backup controller for Percona Server for MongoDB backups on Kubernetes" \
      org.opencontainers.image.source="https://github.com/psmdb-backup-webhook/psmdb-backup-webhook" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["psmdb-backup"]
CMD ["--help"]
