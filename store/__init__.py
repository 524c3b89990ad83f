"""The read model: SQLModel tables the UI reads, a projection of the workflows (rebuildable)."""
