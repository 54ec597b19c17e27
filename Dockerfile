FROM python:3.11-slim
# psql for the one-shot setup service (roles); everything else comes from PyPI.
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY facestream facestream
COPY infra infra
COPY vision vision
COPY training training
COPY producers producers
COPY processors processors
COPY sinks sinks
COPY schemas schemas
COPY scripts scripts
# mediapipe without its opencv-contrib-python dependency (see Makefile).
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps mediapipe==1.2.2 \
    && facestream models fetch --media
ENTRYPOINT ["facestream"]
CMD ["--help"]
