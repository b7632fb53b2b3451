"""The database: SQLAlchemy async engine, one MetaData, alembic migrations and the SQL stores."""
