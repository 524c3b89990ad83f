"""The admin UI and JSON API (FastAPI): reads the read model, acts through workflow updates."""
