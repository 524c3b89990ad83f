"""Database engine: SQLite file by default (WAL, busy timeout), PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session, create_engine


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def writer_pool_size(engine: Engine) -> int:
    """SQLite takes one writer at a time: more threads would only wait on its lock."""
    return 1 if engine.dialect.name == "sqlite" else 8


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per URL per process. It creates no tables: the schema comes from the Alembic
    revisions (`store.migrations.upgrade_to_head`, run by `parcours setup` and `parcours dev`)."""
    return make_engine(url)


@dataclass
class _SharedSession:
    """The session the `session_scope`s of one block share (see `shared_session`)."""

    engine: Engine
    session: Session
    depth: int = 0
    wrote: bool = False


_shared: ContextVar[_SharedSession | None] = ContextVar("parcours_shared_session", default=None)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success, rolled back on error: never a half-written state.

    Inside `shared_session(engine)` the scopes share that block's session: the reads go on in
    its transaction, and a scope that wrote still commits when it ends, as it would alone."""
    shared = _shared.get()
    if shared is not None and shared.engine is engine:
        with _joined(shared) as session:
            yield session
        return
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def _joined(shared: _SharedSession) -> Iterator[Session]:
    """One scope inside a shared session: the outermost one commits what it wrote, or rolls back
    the shared transaction on error (the writes of earlier scopes are committed already)."""
    shared.depth += 1
    try:
        yield shared.session
        if shared.depth == 1 and (shared.wrote or _pending(shared.session)):
            shared.session.commit()
            shared.wrote = False
    except BaseException:
        if shared.depth == 1:
            shared.session.rollback()
            shared.wrote = False
        raise
    finally:
        shared.depth -= 1


def _pending(session: Session) -> bool:
    return bool(session.new or session.dirty or session.deleted)


@contextmanager
def shared_session(engine: Engine) -> Iterator[None]:
    """Every `session_scope(engine)` in this block (and the threads it hands work to, which copy
    its context) uses one session: a page that only reads opens one connection and one
    transaction instead of one per query. For requests that read, not for those that call
    Temporal between their reads: the shared session would not see the worker's writes."""
    with Session(engine, expire_on_commit=False) as session:
        shared = _SharedSession(engine, session)

        @event.listens_for(session, "do_orm_execute")
        def _note_writes(state: ORMExecuteState) -> None:
            if not state.is_select:
                shared.wrote = True

        token = _shared.set(shared)
        try:
            yield
        finally:
            _shared.reset(token)
            session.rollback()  # only reads are left: committed writes are committed
