"""Parcours: shared settings and small cross-cutting helpers."""
