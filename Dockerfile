# The rapport image: every Rapport process of docker-compose.yml (migrate, topics, worker,
# ingest agents) is this image with another command. A normal (non-editable) install of the
# wheel: the wheel carries schemas/, clients.example.toml and the Grafana files as package data
# (setup.py, streams/resources.py), so no source tree stays in the image.
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Exactly what the wheel is built from: metadata, build step, code and its package data.
COPY pyproject.toml setup.py MANIFEST.in README.md clients.example.toml ./
COPY schemas ./schemas
COPY deploy/grafana/dashboards ./deploy/grafana/dashboards
COPY deploy/grafana/provisioning ./deploy/grafana/provisioning
COPY streams ./streams
RUN pip wheel --no-deps -w /dist .

FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=UTC \
    RAPPORT_DATA_DIR=/var/lib/rapport

COPY --from=build /dist /tmp/dist
RUN pip install /tmp/dist/rapport-*.whl \
    && rm -rf /tmp/dist \
    && useradd --system --uid 10001 --home-dir /var/lib/rapport --create-home rapport \
    && mkdir -p /etc/rapport \
    && python -c "import shutil, streams.resources as r; shutil.copy(r.example_clients(), '/etc/rapport/clients.toml')"

WORKDIR /var/lib/rapport
USER rapport
ENTRYPOINT ["rapport"]
CMD ["--help"]
