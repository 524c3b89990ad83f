"""Alembic revisions of the read model, oldest first (`0001` is release 1.0.0's schema)."""
