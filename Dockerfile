# Backout: one process serving the webhooks, the API, Slack and the scheduler.
# Two stages: the build stage makes a virtualenv from the pinned constraints; the runtime stage
# copies it, without pip's cache or a compiler.
FROM python:3.11-slim AS build

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/backout
WORKDIR /src

# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md LICENSE constraints.txt ./
RUN mkdir bot && touch bot/__init__.py \
 && /opt/backout/bin/pip install -c constraints.txt . \
 && /opt/backout/bin/pip uninstall -y backout && rm -rf bot

COPY bot ./bot
RUN /opt/backout/bin/pip install --no-deps -c constraints.txt .


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/backout/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/backout /opt/backout
# The example playbooks are documentation here: mount your own at /etc/backout/playbooks.
COPY playbooks /usr/share/backout/example-playbooks

RUN useradd --system --uid 10001 --home-dir /var/lib/backout --create-home backout \
 && mkdir -p /etc/backout/playbooks
USER backout
WORKDIR /var/lib/backout

# The config lives in /etc/backout (a ConfigMap, a bind mount), the data in the volume.
# Relative paths in the config resolve against /etc/backout.
ENV BACKOUT_CONFIG=/etc/backout/config.yaml \
    BACKOUT_SERVER__HOST=0.0.0.0 \
    BACKOUT_SERVER__PORT=8080 \
    BACKOUT_STORAGE__URL=sqlite:////var/lib/backout/backout.db \
    BACKOUT_PLAYBOOKS_DIR=/etc/backout/playbooks \
    BACKOUT_GIT__MIRROR_DIR=/var/lib/backout/mirrors \
    BACKOUT_LOGGING__FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/backout"]

# On the port the config says (BACKOUT_SERVER__PORT), not a fixed one.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["backout", "health"]

CMD ["backout", "serve"]
