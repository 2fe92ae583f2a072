"""The database: engines, sessions and migrations (`db`), the SQLite writers' queue
(`writelock`), bulk reads and writes outside the ORM (`rows`), the tables (`models`, one module
per concept) and the Alembic revisions (`migrations/`). It imports only hq_server.core."""
