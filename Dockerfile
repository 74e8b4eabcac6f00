# glisk in a container: `glisk serve` by default; any glisk command via `docker run IMAGE glisk …`.
FROM python:3.12-slim

RUN pip install --no-cache-dir uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY glisk_cli ./glisk_cli
COPY alembic ./alembic
RUN uv sync --frozen --no-dev

RUN useradd --system --uid 10001 --home-dir /app --no-create-home glisk
USER glisk

ENV HOST=0.0.0.0 PORT=8000 APP_ENV=production
EXPOSE 8000
CMD ["glisk", "serve"]
