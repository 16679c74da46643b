# One image for every role (api, worker, beat, trainer, migrate); compose picks the command.
# The `ml` extra (TensorFlow) is installed because worker and trainer need it; the API process never imports it.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 FURIWAKE_HOME=/app
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY core core
COPY api api
COPY worker worker
COPY training training
COPY serving serving
COPY cli cli
COPY migrations migrations
COPY data data
RUN pip install --no-cache-dir -e ".[ml]" && useradd --create-home furiwake && mkdir -p /app/var/metrics/worker /models \
    && chown -R furiwake /app/var /models
USER furiwake
EXPOSE 8000
CMD ["gunicorn", "--config", "python:api.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "2", "api.wsgi:app"]
