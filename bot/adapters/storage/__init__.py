"""Storage on SQLAlchemy Core: the schema (`tables`), engines for SQLite and PostgreSQL, the
`SqlStore` and its repositories (`store`, `store_changes`, `store_gitops`, `store_held`, `store_work`), Alembic
migrations (`migrate`, `migrations/`, package data), the PostgreSQL leader lock (`leader`) and
replica epochs, which free a restarted process's earlier claims (`replicas`)."""
