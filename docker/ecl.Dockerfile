# The ECL endpoint for a Restate server (see docker-compose.yml at the project root).
FROM python:3.11-slim
COPY --from=ghcr.io/astral-sh/uv:0.5 /uv /uvx /bin/
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH"
EXPOSE 9080
# Migrate (idempotent), then serve the endpoint over HTTP/2 and register it with Restate.
CMD ["sh", "-c", "ecl migrate && exec ecl server start --engine restate"]
