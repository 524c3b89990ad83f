"""Idempotent commands: the rule, written once. Every write from the pages (a form token), the API
(`Idempotency-Key`) and the CLI (`--request-id`) carries a request id, scoped by the user who acts:

- it becomes the Temporal update id (`update_id`) and decides the ids of what the write creates
  (pathway, person, note, form submission: `derived`), so a retry writes nothing twice;
- the request log (`command_request`) keeps what was asked (kind, target, a fingerprint of the
  inputs) and, once done, the answer: the same request again gets that answer; the same key with
  other inputs is refused (422);
- a request recorded without an answer (its first attempt crashed, or still runs) is looked up in
  Temporal by its update id before anything else (services/pathways.py)."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

from services.errors import ServiceError
from store import models
from store import queries as q
from store.db import session_scope

REQUEST_ID_MAX = 100
REQUEST_ID_RULE = (
    f"1 à {REQUEST_ID_MAX} caractères : lettres sans accent, chiffres, « - », « _ », « . » ou « : » (un UUID convient)"
)
_SAFE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:\-]{{0,{REQUEST_ID_MAX - 1}}}")
KEPT_FOR = timedelta(days=30)
"""How long a request's answer is kept for its retries (older entries are forgotten)."""
_PRUNE_EVERY_SECONDS = 3600.0
_last_prune = float("-inf")


def valid_request_id(value: str) -> bool:
    return _SAFE.fullmatch(value) is not None


def check_request_id(value: str | None, *, label: str = "Clé de requête") -> str | None:
    """`value` unchanged, or a French refusal naming `label` (the value itself is not echoed:
    it may come from a header)."""
    if value is not None and not valid_request_id(value):
        raise ServiceError(f"{label} invalide : {REQUEST_ID_RULE}.", fields={"request_id": REQUEST_ID_RULE})
    return value


def new_request_id() -> str:
    return str(uuid.uuid4())


def fingerprint(kind: str, target: str, inputs: dict[str, Any]) -> str:
    canonical = json.dumps(
        [kind, target, inputs], sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


Row = TypeVar("Row", bound=SQLModel)

ALREADY_USED = (
    "Cette clé de requête a déjà servi pour une autre demande (autres valeurs) : "
    "une nouvelle demande a besoin d'une nouvelle clé (sur une page : rechargez-la)."
)


@dataclass
class Request:
    """One write's request id and what the log knows of it. `given`: the caller sent the id (else
    a fresh one, known to nobody, so nothing is logged)."""

    engine: Engine
    actor_user_id: str
    request_id: str
    given: bool
    kind: str
    target: str
    fingerprint: str
    answer: dict[str, Any] | None = None
    pending: bool = False
    pathway_id: str | None = None

    @property
    def update_id(self) -> str:
        """The Temporal update id: scoped by the user, so two users' keys never meet."""
        return f"{self.actor_user_id}:{self.request_id}"

    def derived(self, prefix: str, length: int = 20) -> str | None:
        """An id for what this request creates, the same on every retry (None without a given id:
        the caller draws a random one)."""
        if not self.given:
            return None
        digest = hashlib.sha256(f"{self.actor_user_id}\n{self.request_id}\n{prefix}".encode()).hexdigest()
        return f"{prefix}-{digest[:length]}"

    def _check(self, row: models.CommandRequest) -> None:
        if (row.kind, row.target, row.fingerprint) != (self.kind, self.target, self.fingerprint):
            raise ServiceError(ALREADY_USED, fields={"request_id": "clé déjà utilisée pour une autre demande"})
        self.answer = row.result
        self.pending = row.result is None
        self.pathway_id = row.pathway_id

    def _log_row(self, **recorded: Any) -> models.CommandRequest:
        """This request's row in the log (`recorded`: its pathway, its answer)."""
        return models.CommandRequest(
            actor_user_id=self.actor_user_id,
            request_id=self.request_id,
            kind=self.kind,
            target=self.target,
            fingerprint=self.fingerprint,
            created_at=q.now(),
            **recorded,
        )

    def begin(self, pathway_id: str | None) -> None:
        """Record the request (once its checks passed, before it writes anything else)."""
        if not self.given or self.pending:
            return
        _prune(self.engine)
        row = self._log_row(pathway_id=pathway_id)
        try:
            with session_scope(self.engine) as session:
                session.add(row)
            self.pending, self.pathway_id = True, pathway_id
        except IntegrityError:
            # A twin of this request recorded it first (a double submit): go on with its record.
            if not self.answered_by_twin():
                raise

    def finish(self, answer: dict[str, Any]) -> None:
        """Keep the answer: a retry of this request gets it as it is."""
        if not self.given:
            return
        with session_scope(self.engine) as session:
            row = session.get(models.CommandRequest, (self.actor_user_id, self.request_id))
            if row is None:
                row = self._log_row()
            row.result, row.finished_at = answer, q.now()
            row.pathway_id = row.pathway_id or answer.get("pathway_id")
            session.add(row)
        self.answer, self.pending = answer, False

    def create_once(self, model: type[Row], prefix: str, write: Callable[[Session, str], Row]) -> Row:
        """The row this request creates (`write` adds it under the id given), once: a retry, or the
        twin of a double submit, answers the row already there instead of adding a second."""
        row_id = self.derived(prefix) or q.new_id(prefix)
        with session_scope(self.engine) as session:
            existing = session.get(model, row_id)
            if existing is not None:
                return existing
        self.begin(None)  # the same key with other values is refused from now on
        try:
            with session_scope(self.engine) as session:
                row = write(session, row_id)
        except IntegrityError:  # the twin of a double submit created it first
            with session_scope(self.engine) as session:
                found = session.get(model, row_id)
            if found is None:
                raise
            row = found
        self.finish({"id": row_id})
        return row

    def finish_in(self, session: Session, answer: dict[str, Any]) -> None:
        """Record the request with its answer in the caller's transaction, beside what it wrote
        (for writes with no id of their own to derive, such as a one-time link): of two twins of a
        double submit, the second fails on its commit and writes nothing (`answered_by_twin`)."""
        if not self.given:
            return
        session.add(self._log_row(result=answer, finished_at=q.now()))

    def answered_by_twin(self) -> bool:
        """After a commit refused by the database: whether a twin of this request recorded it first
        (then this one was written by nobody), checked as a retry is (other values: refused)."""
        if not self.given:
            return False
        existing = _read(self.engine, self.actor_user_id, self.request_id)
        if existing is None:
            return False
        self._check(existing)
        return True

    def forget(self) -> None:
        """The request was refused and changed nothing: its key may be used again."""
        if not self.given:
            return
        with session_scope(self.engine) as session:
            row = session.get(models.CommandRequest, (self.actor_user_id, self.request_id))
            if row is not None and row.result is None:
                session.delete(row)
        self.pending = False


def _read(engine: Engine, actor_user_id: str, request_id: str) -> models.CommandRequest | None:
    with session_scope(engine) as session:
        return session.get(models.CommandRequest, (actor_user_id, request_id))


def _prune(engine: Engine) -> None:
    """Forget requests older than KEPT_FOR (at most once an hour per process)."""
    global _last_prune
    if time.monotonic() - _last_prune < _PRUNE_EVERY_SECONDS:
        return
    _last_prune = time.monotonic()
    with session_scope(engine) as session:
        session.exec(delete(models.CommandRequest).where(col(models.CommandRequest.created_at) < q.now() - KEPT_FOR))


def open_request(
    engine: Engine, *, actor_user_id: str, request_id: str | None, kind: str, target: str, inputs: dict[str, Any]
) -> Request:
    """The request a write carries (a fresh id when none was given), with what the log knows of
    it; refused (422) when its key already served another request of this user."""
    given = check_request_id(request_id) is not None
    request = Request(
        engine=engine,
        actor_user_id=actor_user_id,
        request_id=request_id if request_id is not None else new_request_id(),
        given=given,
        kind=kind,
        target=target,
        fingerprint=fingerprint(kind, target, inputs),
    )
    if given:
        row = _read(engine, actor_user_id, request.request_id)
        if row is not None:
            request._check(row)
    return request
