"""The database plumbing: one handle built from the settings (`Database`), the seed's session
factory (`setup_db_session`), and below them the transaction a Unit of Work runs in, connection
set-up, error translation and LISTEN (docs/architecture.md, "Layers").

    from glisk_cli.db import Database, setup_db_session
"""

from glisk_cli.db.handle import Database, setup_db_session

__all__ = ["Database", "setup_db_session"]
