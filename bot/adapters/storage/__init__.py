"""Storage on SQLAlchemy Core: the schema (`tables`), engines for SQLite and PostgreSQL, the
`SqlStore` and its repositories (`store`, `store_changes`, `store_gitops`, `store_work`), Alembic
migrations (`migrate`, `migrations/`, package data) and the PostgreSQL leader lock (`leader`)."""
