# cinerec: one image for every role (docs/deployment.md). The first stage builds the
# virtualenv; the second carries only it and runs as an unprivileged user.
#   docker build -t cinerec .
#   docker run -p 5001:5001 -p 5000:5000 cinerec        # `serve`: everything in one process

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .

FROM python:3.11-slim
# LightGBM and implicit need the OpenMP runtime; nothing else is installed.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin cinerec \
    && mkdir /data \
    && chown cinerec:cinerec /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    CINEREC_DATA_DIR=/data \
    CINEREC_HEALTH_URL=http://127.0.0.1:5001/readyz
USER 10001:10001
WORKDIR /home/cinerec
VOLUME ["/data"]
EXPOSE 5001 5000 9101
# Each role sets CINEREC_HEALTH_URL to its own readiness endpoint (compose.yaml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['CINEREC_HEALTH_URL'], timeout=3)"]
ENTRYPOINT ["cinerec"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5001", "--collector-port", "5000"]
