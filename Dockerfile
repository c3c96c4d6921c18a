# The psmdb-backup-webhook image: one console script, `psmdb-backup` (serve, certs, lint, ...), as UID 10001.
#
#   docker build -t psmdb-backup-webhook:0.1.0 .
#   docker run --rm --read-only psmdb-backup-webhook:0.1.0 --version
#   docker run --rm --read-only -v "$PWD/deploy:/in:ro" psmdb-backup-webhook:0.1.0 lint /in
#
# BASE is any image with Python 3.11+, the venv module and tzdata (cron schedules may name a zone), at the same path
# in both stages (the venv's python is a symlink into it): the public python:3.11-slim by default; the tests build
# from a local Debian image instead (--build-arg BASE=..., tests/e2e/test_image_e2e.py).
# Dependencies are installed as wheels only, at the versions pinned in constraints.txt: no compiler is needed or
# shipped, and no pip cache is kept. The final stage has the venv and nothing else from the build: no pip, no
# setuptools, no wheels. It runs with a read-only root file system: nothing is written outside /tmp (HOME), and
# `serve` only reads its TLS directory.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Dependencies first, in their own layer: it only changes with pyproject.toml or constraints.txt, not with the code.
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv /opt/venv \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --constraint constraints.txt -r /tmp/requirements.txt
COPY README.md LICENSE ./
COPY webhook/ webhook/
# webhook/schemas is a symlink to ../schemas (the JSON Schemas, package data): the target must be in the context too
COPY schemas/ schemas/
# The project itself: a wheel (so only what the wheel ships is installed), its dependencies already satisfied from the
# layer above (--no-index proves it). Then the checks that a broken wheel or base fails the build, not the first
# admission request: the version, every schema, a named time zone.
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --constraint constraints.txt /wheels/psmdb_backup_webhook-*.whl \
 && /opt/venv/bin/psmdb-backup --version \
 && /opt/venv/bin/python -c "from webhook.policy.schema import SCHEMA_FILES as S, load_schema as L; [L(k) for k in S]" \
 && /opt/venv/bin/python -c "from zoneinfo import ZoneInfo; ZoneInfo('Europe/Berlin')" \
 && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools wheel \
 && rm -rf /wheels /src/build /opt/venv/lib/python3*/site-packages/*/tests

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="psmdb-backup-webhook" \
      org.opencontainers.image.description="Admission webhooks, CI linter and backup controller for Percona Server for MongoDB backups on Kubernetes" \
      org.opencontainers.image.source="https://github.com/psmdb-backup-webhook/psmdb-backup-webhook" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["psmdb-backup"]
CMD ["--help"]
