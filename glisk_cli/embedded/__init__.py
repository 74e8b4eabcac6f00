"""Embedded PostgreSQL: glisk's zero-setup default when DATABASE_URL is unset.

`server.py` runs one data directory's server; `processes.py` tells whether it is alive;
`root.py` holds what running it as root takes.
"""

from glisk_cli.embedded.server import EmbeddedServer, ServerState, default_data_dir, embedded_server

__all__ = ["EmbeddedServer", "ServerState", "default_data_dir", "embedded_server"]
