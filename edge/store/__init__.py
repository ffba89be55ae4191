"""The SQLite store: connection, transactions, versioned schema (see ``database``)."""
