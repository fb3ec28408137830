"""T-SQL parsed with sqlglot's ``tsql`` dialect and executed on SQLite, one database set per server."""
