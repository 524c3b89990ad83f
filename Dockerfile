# One image for every Parcours process (worker, admin UI, setup): same code everywhere.
FROM node:20-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
# Debian's DejaVu fonts: every French character in the PDFs (the savoir-être passport).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY parcours parcours
COPY definitions definitions
COPY workflows workflows
COPY activities activities
COPY store store
COPY services services
COPY worker worker
COPY admin_ui admin_ui
RUN pip install --no-cache-dir --no-deps .
COPY --from=assets /assets/node_modules/@gouvfr/dsfr/dist /app/assets/@gouvfr/dsfr/dist
COPY --from=assets /assets/node_modules/htmx.org/dist /app/assets/htmx.org/dist
COPY --from=assets /assets/node_modules/elkjs/lib/elk.bundled.js /app/assets/elkjs/lib/elk.bundled.js
ENV PARCOURS_MODE=prod PARCOURS_ASSETS_DIR=/app/assets
CMD ["parcours", "worker"]
