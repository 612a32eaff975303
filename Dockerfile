FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY celery_app ./celery_app
COPY handlers ./handlers
COPY taskqueue_cli ./taskqueue_cli
RUN pip install --no-cache-dir .
COPY Procfile ./
ENV PORT=8080
EXPOSE 8080
CMD ["sh", "-c", "exec gunicorn --worker-class gthread --workers ${WEB_CONCURRENCY:-2} --threads ${WEB_THREADS:-1024} --worker-connections ${WEB_CONNECTIONS:-2048} --bind 0.0.0.0:${PORT} 'app:create_app()'"]
