"""The HTTP health server behind `glisk serve`: /health, /readyz, /livez, /metrics, and with
`--dashboard` a read-only web view of the pipeline beside them.

One job per module:

- `http`: HTTP/1.1 on asyncio — request heads, responses, and the connection (keep-alive,
  pipelining, flow control, timeouts). It knows nothing of the paths it serves.
- `app`: the application — the four paths and their answers, and `run`, which serves them until
  SIGTERM or SIGINT.
- `check`: the database check that /health, /readyz and /metrics share, off every request's path.
- `metrics`: the Prometheus metrics behind /metrics.
- `dashboard`: the web view's paths, its password, and its readings off the event loop.
- `pages`: the web view's HTML, from the Jinja2 templates in `templates/` (autoescaped), with
  `static/` holding its one stylesheet and its refresh script.

Nothing is imported here: `glisk serve` imports `app` when it runs, so that `glisk --help` stays
free of SQLAlchemy and Prometheus.
"""
