"""The application layer: every rule about who may do and see what, for reads and writes. Pages,
the JSON API and the CLI call it; it calls Temporal (updates) and the read model (store)."""
