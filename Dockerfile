# The Handover images used by docker-compose.yml, from one base (a build argument):
#   target `hub`      (the default, last stage): the hub, `handover serve`, as user handover (uid 10001)
#   target `patroni`  PostgreSQL 15 from Debian, managed by Patroni (from PyPI), as user postgres
#   target `etcd`     Debian's etcd-server, the store Patroni keeps its leader lock in
# BASE_IMAGE is any Debian bookworm image: python:3.11-slim where Docker Hub is reachable, or one made from
# Debian's packages with deploy/compose/make-base.sh where it is not (`make compose-check` chooses). What the
# base lacks (Python, CA certificates, useradd) is installed from Debian. Builds with Debian's docker.io 20.10
# and docker-compose 1.29 (the classic builder: no BuildKit-only syntax).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS python
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# No service starts inside a build; PostgreSQL's package makes no default cluster (Patroni makes its own).
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
    && missing="" \
    && { python3 -c 'import venv, ensurepip' 2>/dev/null || missing="python3 python3-venv"; } \
    && { [ -e /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; } \
    && { command -v useradd > /dev/null || missing="$missing passwd"; } \
    && if [ -n "$missing" ]; then \
        apt-get update -q && apt-get install -y -q --no-install-recommends $missing && rm -rf /var/lib/apt/lists/*; \
    fi
COPY deploy/docker/with-build-ca /usr/local/sbin/with-build-ca

FROM python AS patroni
ARG PG_MAJOR=15
ARG PATRONI_VERSION=4.1.5
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
ARG EXTRA_CA_CERTS=""
RUN apt-get update -q && apt-get install -y -q --no-install-recommends postgresql-${PG_MAJOR} \
    && rm -rf /var/lib/apt/lists/*
# Patroni with its etcd v3 client and psycopg 3 (binary wheel: no libpq build), in its own virtualenv.
RUN with-build-ca sh -c "python3 -m venv /opt/patroni \
    && /opt/patroni/bin/pip install --no-cache-dir --quiet 'patroni[etcd3,psycopg3]==${PATRONI_VERSION}'"
COPY deploy/compose/patroni.yml /etc/patroni/patroni.yml
COPY deploy/compose/post-bootstrap.sh /usr/local/bin/handover-post-bootstrap
RUN mkdir -p /var/lib/postgresql/patroni && chown postgres:postgres /var/lib/postgresql/patroni \
    && chmod 0700 /var/lib/postgresql/patroni
ENV PATH=/opt/patroni/bin:/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH PATRONI_POSTGRESQL_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin
USER postgres
WORKDIR /var/lib/postgresql
EXPOSE 5432 8008
CMD ["patroni", "/etc/patroni/patroni.yml"]

FROM python AS etcd
RUN apt-get update -q && apt-get install -y -q --no-install-recommends etcd-server \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /var/lib/etcd && chown etcd /var/lib/etcd
USER etcd
EXPOSE 2379
CMD ["etcd"]

FROM python AS hub
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
ARG EXTRA_CA_CERTS=""
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY service ./service
COPY adapters ./adapters
COPY fhir_profiles ./fhir_profiles
COPY keys/network.json ./keys/network.json
# No C compiler here: the audit verifier's optional compiled hashing is skipped and its pure-Python twin used.
RUN with-build-ca sh -c "python3 -m venv /opt/handover && /opt/handover/bin/pip install --no-cache-dir --quiet -e ." \
    && useradd --system --uid 10001 --home-dir /app handover \
    && mkdir -p /app/var/published-checkpoints && chown -R handover /app/keys /app/var
ENV PATH=/opt/handover/bin:$PATH
USER handover
EXPOSE 8080
CMD ["handover", "serve"]
