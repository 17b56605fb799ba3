"""Alembic environment: always run programmatically by engine.storage.database with a live connection."""

from __future__ import annotations

from alembic import context

from engine.storage.tables import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
