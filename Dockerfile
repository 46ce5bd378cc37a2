# Backout: one process serving the webhook, the API and (later) Slack and the scheduler.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir bot && touch bot/__init__.py \
 && pip install . \
 && pip uninstall -y backout && rm -rf bot

COPY bot ./bot
COPY playbooks ./playbooks
RUN pip install --no-deps .

RUN useradd --system --uid 10001 --home-dir /var/lib/backout --create-home backout
USER backout
WORKDIR /var/lib/backout

ENV BACKOUT_SERVER__HOST=0.0.0.0 \
    BACKOUT_SERVER__PORT=8080 \
    BACKOUT_STORAGE__URL=sqlite:////var/lib/backout/backout.db \
    BACKOUT_PLAYBOOKS_DIR=/app/playbooks \
    BACKOUT_LOGGING__FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/backout"]

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"

CMD ["backout", "serve"]
