# trainapi image: one image, two roles (see docker-compose.yml).
#   API (default):  trainapi api --host 0.0.0.0 --port 8000
#   worker:         trainapi worker --concurrency 1
# Both need TRAINAPI_REDIS_URL. The API listens on 0.0.0.0 only once an API key
# exists in TRAINAPI_API_KEYS_FILE; otherwise it binds 127.0.0.1 inside the
# container, so the published port cannot be reached.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TRAINAPI_DATA_DIR=/data

# A fixed non-root uid/gid, so a bind mount can be chowned to match (chown -R 10001:10001 DIR).
# /data is created and chowned here, before VOLUME: a new named volume copies this ownership.
RUN groupadd --system --gid 10001 trainapi \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/trainapi \
        --shell /usr/sbin/nologin trainapi \
    && mkdir -p /data \
    && chown 10001:10001 /data

WORKDIR /src

# Dependency layer: depends on pyproject.toml and the client distribution only, so
# editing the service's source does not reinstall the dependencies. The list goes
# through a requirements file, one per line, so environment markers (quotes,
# spaces) reach pip intact; ./client on the same command line provides the
# trainapi-client it names.
COPY pyproject.toml ./
COPY client ./client
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" > /tmp/requirements.txt \
    && pip install --no-cache-dir ./client -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself: the packages of [tool.setuptools.packages.find] and the readme.
COPY README.md ./
COPY engine ./engine
COPY api ./api
COPY worker ./worker
COPY store ./store
COPY trainapi ./trainapi
# A regular (non-editable) install into site-packages; /src is removed so the
# installed copy is the only one on the path.
RUN pip install --no-cache-dir --no-deps . \
    && cd / \
    && rm -rf /src

USER 10001:10001
WORKDIR /home/trainapi
VOLUME ["/data"]
EXPOSE 8000

# Liveness of the API (slim images have no curl). The worker service disables it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["trainapi", "api", "--host", "0.0.0.0", "--port", "8000"]
