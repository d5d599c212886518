# certbot-sidecar: renews ACME certificates for an app container that binds 80/443 itself.
# Build elsewhere with the default base; where nothing can be pulled, pass a local one:
#   docker build --build-arg BASE_IMAGE=certbot-sidecar/base:trixie -t certbot-sidecar .
ARG BASE_IMAGE=python:3.13-slim

FROM ${BASE_IMAGE} AS build
ARG UV_VERSION=0.13.9
# Optional extras, comma- or space-separated: alerts (apprise, for ALERT_URLS: 20 MB more), and
# certbot's DNS plugins as dns-<plugin> (dns-rfc2136, dns-cloudflare, dns-route53, ... see
# pyproject.toml), e.g. EXTRAS="alerts,dns-rfc2136". The default image has none.
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"
# tini as PID 1: it holds every signal from its first instruction, passes SIGTERM on to the sidecar,
# and reaps orphaned processes (certbot's hooks). Static, so the final stage needs no apt.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tini >/dev/null \
 && cp /usr/bin/tini-static /opt/tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, exactly as locked (hashes checked), so code changes reuse this layer.
COPY pyproject.toml uv.lock README.md ./
RUN set -f && extras=$(for e in $(echo "$EXTRAS" | tr ',' ' '); do echo --extra "$e"; done) \
 && /opt/uv/bin/uv export --frozen --no-dev --no-emit-project --no-header $extras \
    -o /tmp/requirements.txt \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --quiet --no-deps --require-hashes -r /tmp/requirements.txt
COPY sidecar ./sidecar
RUN /opt/venv/bin/pip install --quiet --no-deps . \
 && /opt/venv/bin/pip uninstall --quiet --yes pip \
 && find /opt/venv -name '*.dist-info' -prune -o -name 'tests' -type d -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/tini /usr/local/bin/tini
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Runs as root: it binds port 80 for the challenge, talks to the Docker socket, and owns
# /etc/letsencrypt like certbot does. See README "Privileges".
VOLUME ["/etc/letsencrypt"]
HEALTHCHECK --interval=1m --timeout=30s --start-period=10m --retries=3 CMD ["sidecar", "health"]
# -s: reaps as a subreaper also under `docker run --init`; -e 143: a SIGTERM that ends the sidecar
# before its handler is in place (the first milliseconds) is a clean stop, exit code 0.
ENTRYPOINT ["tini", "-s", "-e", "143", "--", "sidecar"]
CMD ["run"]
# OCI labels (`docker inspect`, registries). The version is pyproject.toml's (a unit test checks);
# the revision and the repository's address come from the build:
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE="$(git remote get-url origin)" -t certbot-sidecar .
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="certbot-sidecar" \
      org.opencontainers.image.description="Keeps Let's Encrypt certificates issued and renewed for an app container that binds ports 80/443 itself: standalone challenges, the app stopped and restarted through the Docker API." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
