"""Persistence: SQLAlchemy models, engine and session factory, queries, Alembic migrations."""
