FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY facestream facestream
COPY producers producers
COPY processors processors
COPY sinks sinks
COPY schemas schemas
# mediapipe without its opencv-contrib-python dependency (see Makefile).
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps mediapipe==1.2.2 \
    && facestream models fetch --media
ENTRYPOINT ["facestream"]
CMD ["--help"]
