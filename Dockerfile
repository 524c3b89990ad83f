# One image for every Parcours process (worker, admin UI, setup): same code everywhere.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY parcours parcours
COPY definitions definitions
COPY workflows workflows
COPY activities activities
COPY store store
COPY worker worker
COPY admin_ui admin_ui
RUN pip install --no-cache-dir .
ENV PARCOURS_MODE=prod
CMD ["parcours", "worker"]
