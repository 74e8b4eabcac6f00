"""The `glisk` command line: one Typer sub-app per noun, composed in `app.py`."""
