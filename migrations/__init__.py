"""Alembic migrations: the only way pricemon's schema is created or changed."""
