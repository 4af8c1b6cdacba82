# One image for every process (web, worker, beat); the command picks the role.
# The test suite does not build this image (no Docker engine on the CI machines).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

RUN useradd --create-home --uid 1000 app
WORKDIR /app

COPY pyproject.toml README.md ./
COPY apps ./apps
COPY config ./config
RUN pip install --upgrade pip && pip install .

COPY . .
# collectstatic needs settings but no real secrets or services.
RUN DJANGO_SECRET_KEY=build-only-build-only-build-only-build-only \
    DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    FIELD_ENCRYPTION_KEYS=ZmFrZS1idWlsZC1vbmx5LWtleS1mYWtlLWJ1aWxkLW9rPQ== \
    PUBLIC_BASE_URL=http://localhost DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --no-input -v 0

# Where every process writes its metric values for the web's /metrics (apps.metrics); set after the build
# so no build step creates it as root. docker-compose mounts one shared tmpfs volume here.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc
USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "4", "--timeout", "60"]
