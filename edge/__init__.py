"""The edge controller: store, domain rules, runtime and CLI."""
