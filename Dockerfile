# syntax=docker/dockerfile:1
# One image for every Kota Cerdas command (kota ingest, kota simulate, later the API):
# docker-compose.yml picks the command. Base pinned to a patch release; upgrade on purpose.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The build context is the repository minus what .dockerignore leaves out (.venv, run/, .env,
# tests, docs): pip builds and installs the project from pyproject.toml like any user would,
# with the server extra (FastAPI, uvicorn, the Grafana SDK, …) that the `kota` commands need;
# the base install alone is the Raspberry Pi agent's.
WORKDIR /src
COPY . .
RUN pip install '.[server]' \
 && useradd --system --user-group --uid 10001 --home-dir /var/lib/kota --create-home kota

# Not root. /var/lib/kota holds ingest's disk buffer and dead letters (a named volume in
# docker-compose.yml, which takes this folder's owner on first use).
USER kota
WORKDIR /var/lib/kota
EXPOSE 9108

ENTRYPOINT ["kota"]
CMD ["--help"]
