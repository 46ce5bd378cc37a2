"""Alembic migrations (package data): `env.py` and one file per revision in `versions/`."""
