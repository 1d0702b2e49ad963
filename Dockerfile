# The rapport image: every Rapport process of docker-compose.yml (migrate, topics, worker,
# ingest agents) is this image with another command. Source stays in /opt/rapport because
# migrations and the schema are read from the repository layout (schemas/).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=UTC \
    RAPPORT_DATA_DIR=/var/lib/rapport

WORKDIR /opt/rapport
COPY pyproject.toml README.md clients.example.toml ./
COPY schemas ./schemas
COPY streams ./streams
RUN pip install -e . \
    && useradd --system --uid 10001 --home-dir /var/lib/rapport --create-home rapport \
    && mkdir -p /etc/rapport && cp clients.example.toml /etc/rapport/clients.toml

USER rapport
ENTRYPOINT ["rapport"]
CMD ["--help"]
