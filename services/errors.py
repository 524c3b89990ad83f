"""Refusals every front end shows the same way: a French message and an HTTP-like kind."""

from __future__ import annotations


class ServiceError(Exception):
    """A request refused, with a French message and an HTTP-like kind
    (invalid, forbidden, not_found, conflict, unavailable: the outcome is unknown, retry the same
    request); `fields` locates form errors."""

    STATUS = {"invalid": 422, "forbidden": 403, "not_found": 404, "conflict": 409, "unavailable": 503}

    def __init__(self, message: str, kind: str = "invalid", fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.fields = message, kind, fields or {}

    @property
    def status(self) -> int:
        return self.STATUS.get(self.kind, 400)


QUOTE_LIMIT = 80
"""User text quoted in a refusal is cut to this many characters, so a refusal never echoes an
oversized payload (to the page, the API, the logs)."""

ID_MAX = 100
"""The longest id (organisation, module, outcome, exit reason, definition, basin, delay) accepted."""

TEXT_MAX = 2000
"""The longest free text (reason, note, form answer) accepted."""


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`value` as text, cut to `limit` characters with "…" when longer."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(value: str | None, *, field: str, label: str, limit: int = TEXT_MAX) -> str | None:
    """`value` unchanged, or a French refusal when longer than `limit` characters (checked
    before anything is stored or sent to the workflow)."""
    if value is not None and len(value) > limit:
        raise ServiceError(
            f"{label} : {limit:_} caractères au plus ({len(value):_} reçus).".replace("_", "\u202f"),
            fields={field: f"{limit:_} caractères au plus.".replace("_", "\u202f")},
        )
    return value


def french_validation_message(error: dict[str, object]) -> str:
    """A pydantic/FastAPI validation error (one item of `errors()`) as a short French sentence."""
    kind, ctx = error.get("type"), error.get("ctx")
    limits = ctx if isinstance(ctx, dict) else {}
    if kind == "string_too_long":
        return f"{limits.get('max_length')} caractères au plus"
    if kind == "string_too_short":
        return f"{limits.get('min_length')} caractère(s) au moins"
    if kind == "too_long":
        return f"{limits.get('max_length')} valeurs au plus"
    if kind == "missing":
        return "champ obligatoire"
    if kind == "string_pattern_mismatch":
        return "format invalide"
    if kind in ("int_parsing", "int_type"):
        return "nombre entier attendu"
    if kind in ("bool_parsing", "bool_type"):
        return "oui ou non attendu"
    if kind == "literal_error":
        return f"valeur attendue : {limits.get('expected')}"
    return str(error.get("msg", "valeur invalide")).removeprefix("Value error, ")
