# The Handover service image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY adapters ./adapters
COPY fhir_profiles ./fhir_profiles
COPY keys/network.json ./keys/network.json
RUN pip install --no-cache-dir -e . && useradd --system --home /app handover && mkdir -p /app/var/published-checkpoints && chown -R handover /app/keys /app/var
USER handover
EXPOSE 8080
CMD ["handover", "serve"]
