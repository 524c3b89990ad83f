"""Refusals every front end shows the same way: a French message and an HTTP-like kind."""

from __future__ import annotations


class ServiceError(Exception):
    """A request refused, with a French message and an HTTP-like kind
    (invalid, forbidden, not_found, conflict); `fields` locates form errors."""

    STATUS = {"invalid": 422, "forbidden": 403, "not_found": 404, "conflict": 409}

    def __init__(self, message: str, kind: str = "invalid", fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.fields = message, kind, fields or {}

    @property
    def status(self) -> int:
        return self.STATUS.get(self.kind, 400)
