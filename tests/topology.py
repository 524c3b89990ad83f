"""The production topology on one machine, without Docker: every process `docker-compose.yml`
runs, as real OS processes configured by PARCOURS_* variables, with logs in one folder.

- the read model on a private PostgreSQL cluster (`initdb`/`pg_ctl` in the folder, its own free
  port: never the machine's shared server);
- the Temporal dev server on its own SQLite file (the one part that differs from production,
  where Temporal keeps its own store on PostgreSQL);
- an SMTP sink in this process (aiosmtpd), recording every message, stoppable on its port;
- `parcours setup` (search attributes, migrations, territory and catalog), then two
  `parcours worker` and one `parcours ui` with several uvicorn worker processes.

Every piece can be killed, stopped and started again, and readiness is always polled (never a
fixed sleep). Three ways in:

- pytest: the `topology` fixture below (`from tests.topology import topology_fixture` in a test
  module);
- a script: `async with Topology() as topology: ...` (bench/faults.py);
- `python -m tests.topology` (`make prod-local`): starts it and keeps it running until Ctrl-C.

A small client for the fault suite: `await topology.api(email)` gives an `ApiUser` (bearer
token from `POST /api/auth/token`) that starts pathways, completes tasks and reads pathways
through the HTTP API, with an optional request id sent as `Idempotency-Key`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from temporalio.client import Client

from worker.mail_capture import SmtpController
from worker.temporal_server import DevServer, free_port

ROOT = Path(__file__).resolve().parents[1]
PARCOURS = str(Path(sys.executable).parent / "parcours")
PASSWORD = "demo-parcours-74"  # the demo password of the README (worker.demo.DEMO_PASSWORD)
DB_USER = DB_NAME = "parcours"


async def until(check: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        last = result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(0.1)


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


# --- Parcours processes ----------------------------------------------------------------------


@dataclass
class ParcoursProcess:
    """One `parcours …` OS process in its own process group, its output appended to `log`."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    log_offset: int = 0  # where this incarnation's output starts in `log`

    def start(self) -> None:
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [PARCOURS, *self.args],
                env=self.env,
                cwd=self.cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What this incarnation printed so far."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as file:
            file.seek(self.log_offset)
            return file.read().decode("utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """kill -9 on the process and its children (the UI's uvicorn workers)."""
        if self.running:
            assert self.process is not None
            _kill_group(self.process, signal.SIGKILL)
            self.process.wait()

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, as an orchestrator stops a container; SIGKILL past `timeout`."""
        if not self.running:
            return
        assert self.process is not None
        _kill_group(self.process, signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        _kill_group(self.process, signal.SIGKILL)  # anything the group left behind

    def children(self, marker: str = "") -> list[int]:
        """The pids of the process's live children whose command line contains `marker`."""
        if not self.running:
            return []
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            pids = [int(p) for p in path.read_text().split()]
        except OSError:
            return []
        return [pid for pid in pids if _alive(pid) and marker in _command_line(pid)]


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# --- The read model's private PostgreSQL cluster -------------------------------------------


def postgres_bin_dir() -> Path:
    """Where initdb, pg_ctl and postgres live: on PATH, else Debian's newest /usr/lib/postgresql."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("PostgreSQL's initdb was not found (apt-get install postgresql)")
    return versions[-1].parent


class PrivatePostgres:
    """A PostgreSQL cluster of its own: created with initdb in a folder, started with pg_ctl on a
    free loopback port, its socket in that folder. PostgreSQL refuses to run as root: under root
    (CI), its commands run as the `postgres` system user, owner of the folder."""

    def __init__(self, folder: Path | None = None, *, port: int | None = None) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="parcours-pg-"))  # not under a 0700 parent
        self.data = self.folder / "data"
        self.log = self.folder / "postgresql.log"
        self.port = port or free_port()
        self.bin = postgres_bin_dir()
        self.owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def _run(self, *command: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.owner.pw_uid if self.owner else None,
            group=self.owner.pw_gid if self.owner else None,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            start_new_session=True,  # a Ctrl-C in the terminal reaches the harness, not PostgreSQL
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command[:2])} failed ({result.returncode}): {result.stderr}{log}")
        return result.stdout

    def init(self) -> None:
        """initdb once: the superuser `parcours` (trust on loopback), then the `parcours` database."""
        if (self.data / "PG_VERSION").exists():
            return
        if self.owner is not None and not _searchable_by(self.folder.resolve().parent, self.owner):
            raise RuntimeError(
                f"{self.folder} : PostgreSQL tourne sous l'utilisateur postgres, qui ne peut pas atteindre ce "
                "dossier (un dossier parent ne lui est pas ouvert) ; choisissez un dossier sous /tmp ou /srv"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.owner is not None:
            os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
            os.chmod(self.folder, 0o700)
        self._run("initdb", "-D", str(self.data), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """pg_ctl start -w: returns once the server accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.folder}' "
            "-c max_connections=300"  # 2 workers and the UI's processes each keep a pool
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "120", "start")
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={DB_USER} dbname=postgres", autocommit=True) as c:
            if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                c.execute(f'CREATE DATABASE "{DB_NAME}"')

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m fast (clients disconnected, clean) or immediate (like a crash)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    @property
    def running(self) -> bool:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _alive(pid)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        if self.running:  # pg_ctl failed: kill the postmaster (its backends follow)
            with contextlib.suppress(Exception):
                os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def _searchable_by(folder: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may traverse `folder` and every folder above it (the x permission bit)."""
    for path in (folder, *folder.parents):
        if not path.exists():
            continue
        mode = path.stat()
        bit = 0o100 if mode.st_uid == user.pw_uid else 0o010 if mode.st_gid == user.pw_gid else 0o001
        if not mode.st_mode & bit:
            return False
    return True


# --- SMTP sink ------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """An SMTP server in this process (aiosmtpd, its own thread) recording every message, each
    also written to `spool` as an .eml file; `stop()` then `start()` reopen the same port."""

    port: int
    spool: Path | None = None
    messages: list[Message] = field(default_factory=list)
    on_message: Callable[[Message], None] | None = None
    controller: SmtpController | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        if self.spool is not None:
            self.spool.mkdir(parents=True, exist_ok=True)
            (self.spool / f"{len(self.messages):05d}.eml").write_bytes(envelope.content)
        if self.on_message is not None:
            self.on_message(message)
        return "250 OK"

    def start(self) -> None:
        if self.controller is None:
            self.controller = SmtpController(self, hostname="127.0.0.1", port=self.port, ready_timeout=30)
            self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def running(self) -> bool:
        return self.controller is not None

    def about(self, pathway_id: str) -> list[Message]:
        """The messages whose subject names the pathway."""
        return [m for m in self.messages if pathway_id in str(m["Subject"])]

    def keys(self, prefix: str = "") -> list[str]:
        """The e-mail keys (X-Parcours-Key) received, in order, those starting with `prefix`."""
        return [str(m["X-Parcours-Key"]) for m in self.messages if str(m["X-Parcours-Key"]).startswith(prefix)]


# --- The API client -------------------------------------------------------------------------


@dataclass
class ApiUser:
    """One user of the JSON API (bearer token). Methods return the raw httpx response: the fault
    suite records what a user saw (status codes, French messages)."""

    email: str
    organisation_id: str
    http: httpx.AsyncClient

    async def start_pathway(
        self,
        definition_id: str = "rsa_socio_pro",
        *,
        basin: str = "annecien",
        referent_org: str | None = None,
        person: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> httpx.Response:
        body = {
            "definition_id": definition_id,
            "basin": basin,
            "referent_org": referent_org or self.organisation_id,
            "person": person
            or {"first_name": "Alex", "last_name": f"Topologie-{uuid.uuid4().hex[:6]}", "consent": True},
        }
        return await self.http.post("/api/pathways", json=body, headers=_request_id(request_id))

    async def complete_task(
        self, task_id: str, outcome: str, data: dict[str, Any] | None = None, *, request_id: str | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/tasks/{task_id}/complete",
            json={"outcome": outcome, "data": data or {}},
            headers=_request_id(request_id),
        )

    async def pathway(self, pathway_id: str) -> httpx.Response:
        return await self.http.get(f"/api/pathways/{pathway_id}")

    async def open_tasks(self, pathway_id: str) -> dict[str, str]:
        """The pathway's open tasks, step id -> task id (read model, as the API shows them)."""
        response = await self.pathway(pathway_id)
        response.raise_for_status()
        return {t["step_id"]: t["id"] for t in response.json()["tasks"] if t["status"] == "open"}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> ApiUser:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def _request_id(request_id: str | None) -> dict[str, str]:
    return {"Idempotency-Key": request_id} if request_id else {}


# --- The topology ---------------------------------------------------------------------------


class Topology:
    """Every process of the production topology, in `folder` (a temporary one by default,
    removed by `close()` unless `keep`). Async context manager: `close()` always runs."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        workers: int = 2,
        ui_workers: int = 3,
        ui_port: int | None = None,
        temporal_ui: bool = False,
        env: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.keep = keep or folder is not None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="parcours-topology-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.logs = self.folder / "logs"
        self.logs.mkdir(exist_ok=True)
        pg_folder = self.folder / "postgresql"
        self.postgres = PrivatePostgres(pg_folder if self.keep else None)
        self.temporal = DevServer(
            port=free_port(),
            db_file=self.folder / "temporal.db",
            ui_port=free_port() if temporal_ui else None,
            log_file=self.logs / "temporal.log",
        )
        self.smtp = SmtpSink(port=free_port(), spool=self.folder / "mail")
        self.ui_port = ui_port or free_port()
        self.ui_workers = ui_workers
        self.client: Client | None = None
        self._engine: Engine | None = None
        self._passwords: set[str] = set()
        secret_file = self.folder / "secret_key"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PARCOURS_")}
        self.env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "PARCOURS_MODE": "prod",
                "PARCOURS_SECRET_KEY": secret_file.read_text(),
                "PARCOURS_DATA_DIR": str(self.folder / "data"),
                "PARCOURS_DATABASE_URL": self.postgres.url,
                "PARCOURS_TEMPORAL_ADDRESS": self.temporal.address,
                "PARCOURS_TASK_QUEUE": "parcours",
                "PARCOURS_SMTP_HOST": "127.0.0.1",
                "PARCOURS_SMTP_PORT": str(self.smtp.port),
                "PARCOURS_UI_HOST": "127.0.0.1",
                "PARCOURS_UI_PORT": str(self.ui_port),
                "PARCOURS_UI_WORKERS": str(ui_workers),
                "PARCOURS_BASE_URL": f"http://127.0.0.1:{self.ui_port}",
                "PARCOURS_ASSETS_DIR": str(ROOT / "node_modules"),
                **(env or {}),
            }
        )
        self.workers = [self._process(f"worker-{i + 1}", "worker") for i in range(workers)]
        self.ui = self._process("ui", "ui")

    def _process(self, name: str, *args: str) -> ParcoursProcess:
        return ParcoursProcess(name, list(args), self.env, self.logs / f"{name}.log", self.folder)

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def temporal_ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.temporal.ui_port}" if self.temporal.ui_port else None

    @property
    def task_queue(self) -> str:
        return self.env["PARCOURS_TASK_QUEUE"]

    # -- Whole lifecycle --

    async def start(self) -> Topology:
        try:
            self.smtp.start()
            await asyncio.gather(self.start_postgres(), self.start_temporal())
            await self.setup()
            for worker in self.workers:
                worker.start()
            self.ui.start()
            await asyncio.gather(*(self._worker_ready(w) for w in self.workers), self._ui_ready())
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Stop everything, whatever state it is in (each step even if another failed)."""
        steps: list[Callable[[], Awaitable[None] | None]] = [
            self.ui.stop,
            *(w.stop for w in self.workers),
            self._dispose_engine,
            self.temporal.stop,
            self.smtp.stop,
            self.postgres.destroy if not self.keep else lambda: self.postgres.stop("fast"),
        ]
        for step in steps:
            with contextlib.suppress(Exception):
                result = step()
                if asyncio.iscoroutine(result):
                    await result
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def __aenter__(self) -> Topology:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def setup(self) -> str:
        """`parcours setup`, as the compose file's one-shot job: its output, or an error."""
        result = await asyncio.to_thread(
            subprocess.run,
            [PARCOURS, "setup"],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        (self.logs / "setup.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"parcours setup exited {result.returncode}: {result.stdout}{result.stderr}")
        return result.stdout

    # -- Workers --

    async def _worker_ready(self, worker: ParcoursProcess, timeout: float = 90) -> None:
        """Ready once Temporal lists the process (pid@host) among the task queue's pollers."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        assert self.client is not None
        request = DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )

        async def polling() -> bool:
            worker.check_alive()
            assert self.client is not None
            try:
                described = await self.client.workflow_service.describe_task_queue(request)
            except Exception:  # Temporal restarting
                return False
            return any(p.identity.startswith(f"{worker.pid}@") for p in described.pollers)

        await until(polling, timeout=timeout, what=f"{worker.name} polling {self.task_queue}")

    async def kill_worker(self, index: int) -> None:
        """kill -9 worker `index` (0-based): no shutdown, its workflow tasks time out elsewhere."""
        self.workers[index].kill()

    async def stop_worker(self, index: int) -> None:
        await self.workers[index].stop()

    async def start_worker(self, index: int) -> None:
        worker = self.workers[index]
        if not worker.running:
            worker.start()
        await self._worker_ready(worker)

    async def restart_worker(self, index: int, *, kill: bool = True) -> None:
        if kill:
            self.workers[index].kill()
        else:
            await self.workers[index].stop()
        await self.start_worker(index)

    async def worker_of(self, pathway_id: str) -> int | None:
        """The index of the worker that completed the pathway's latest workflow task (it holds the
        run in its cache), from the history's identities; None if it is none of ours."""
        assert self.client is not None
        identity = ""
        async for event in self.client.get_workflow_handle(pathway_id).fetch_history_events():
            if event.HasField("workflow_task_completed_event_attributes"):
                identity = event.workflow_task_completed_event_attributes.identity
        for index, worker in enumerate(self.workers):
            if worker.process is not None and identity.startswith(f"{worker.pid}@"):
                return index
        return None

    # -- UI --

    async def _ui_ready(self, timeout: float = 90) -> None:
        """Ready once every uvicorn worker process finished its startup and /healthz answers."""

        async def serving() -> bool:
            self.ui.check_alive()
            if self.ui.output().count("Application startup complete") < self.ui_workers:
                return False
            try:
                async with httpx.AsyncClient(base_url=self.ui_url, timeout=5) as http:
                    return (await http.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            await until(serving, timeout=timeout, what=f"parcours ui on {self.ui_url}")
        except TimeoutError as error:  # say why: what this incarnation printed
            raise TimeoutError(f"{error}; its output:\n{self.ui.output()[-4000:]}") from None

    def ui_processes(self) -> list[int]:
        """The pids of the UI's live uvicorn worker processes (with one worker: the UI itself)."""
        if self.ui_workers == 1:
            return [self.ui.pid] if self.ui.running else []
        return self.ui.children("spawn_main")  # not multiprocessing's resource tracker

    async def kill_ui(self) -> None:
        """kill -9 the UI and all its uvicorn workers (requests in flight are cut)."""
        self.ui.kill()

    async def start_ui(self) -> None:
        if not self.ui.running:
            self.ui.start()
        await self._ui_ready()

    async def restart_ui(self, *, kill: bool = True) -> None:
        if kill:
            self.ui.kill()
        else:
            await self.ui.stop()
        await self.start_ui()

    # -- PostgreSQL (read model) --

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.init)
        await asyncio.to_thread(self.postgres.start)

    async def stop_postgres(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected and the server shuts down cleanly; `immediate`: it
        stops at once, as in a crash, and recovers from its WAL at the next start."""
        await asyncio.to_thread(self.postgres.stop, mode)

    # -- Temporal --

    async def start_temporal(self) -> Client:
        """The dev server on its SQLite file (the same file across restarts): every pathway resumes."""
        self.client = await self.temporal.start()
        return self.client

    async def stop_temporal(self) -> None:
        await asyncio.to_thread(self.temporal.stop)

    async def kill_temporal(self) -> None:
        process = self.temporal.process
        if process is not None and process.poll() is None:
            _kill_group(process, signal.SIGKILL)
            await asyncio.to_thread(process.wait)

    async def restart_temporal(self, *, kill: bool = True) -> Client:
        await (self.kill_temporal() if kill else self.stop_temporal())
        return await self.start_temporal()

    # -- SMTP --

    def stop_smtp(self) -> None:
        self.smtp.stop()

    def start_smtp(self) -> None:
        self.smtp.start()

    # -- Users and the API --

    @property
    def engine(self) -> Engine:
        """This process's engine on the read model (to inspect it, as an operator's query would)."""
        if self._engine is None:
            from store.db import make_engine

            self._engine = make_engine(self.postgres.url)
        return self._engine

    def _dispose_engine(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    async def ensure_passwords(self, *emails: str) -> None:
        """Give demo users the README's demo password (as `parcours users set-password` does: it
        ends their tokens, so each user gets it once)."""
        from services.identity import set_password

        for email in emails:
            if email not in self._passwords:
                await asyncio.to_thread(set_password, self.engine, email=email, password=PASSWORD)
                self._passwords.add(email)

    async def api(self, email: str, *, timeout: float = 30.0) -> ApiUser:
        """A signed-in API user: a bearer token from POST /api/auth/token."""
        await self.ensure_passwords(email)
        http = httpx.AsyncClient(base_url=self.ui_url, timeout=timeout)
        try:
            token = await http.post("/api/auth/token", json={"email": email, "password": PASSWORD})
            token.raise_for_status()
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            me = await http.get("/api/me")
            me.raise_for_status()
        except BaseException:
            await http.aclose()
            raise
        return ApiUser(email=email, organisation_id=me.json()["organisation_id"], http=http)


# --- pytest ---------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover  (scripts without pytest)
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(name="topology")
    async def topology_fixture() -> AsyncIterator[Topology]:
        """The whole topology for one test, stopped and removed afterwards."""
        async with Topology() as running:
            yield running


# --- make prod-local ------------------------------------------------------------------------

DEMO_ACCOUNTS = [
    ("camille.martin@example.org", "chargée d'accompagnement, Département (référente RSA)"),
    ("julien.roux@example.org", "conseiller, France Travail Annecy"),
    ("sarah.benali@example.org", "conseillère, Mission Locale du bassin annécien"),
    ("lea.dupont@example.org", "animatrice du GTO, bassin annécien"),
    ("marc.girard@example.org", "concepteur de parcours, SPIE"),
    ("admin@example.org", "administrateur, SPIE"),
]


async def serve(arguments: argparse.Namespace) -> None:
    """Start the topology, print where everything is, wait for Ctrl-C, stop it all."""
    folder = Path(arguments.dir).resolve() if arguments.dir else None
    topology = Topology(
        folder, workers=arguments.workers, ui_workers=arguments.ui_workers, ui_port=arguments.ui_port, temporal_ui=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def arrived(message: Message) -> None:
        print(f"[prod-local] e-mail à {message['X-Envelope-To']} : {message['Subject']}", flush=True)

    topology.smtp.on_message = arrived
    print(f"[prod-local] démarrage dans {topology.folder} …", flush=True)
    async with topology:
        await topology.ensure_passwords(*(email for email, _ in DEMO_ACCOUNTS))
        pids = ", ".join(str(w.pid) for w in topology.workers)
        lines = [
            f"Interface et API : {topology.ui_url}  (API : {topology.ui_url}/docs ; "
            f"{topology.ui_workers} processus uvicorn)",
            f"Temporal UI : {topology.temporal_ui_url}  (serveur {topology.temporal.address}, "
            f"fichier {topology.temporal.db_file})",
            f"Base de lecture : {topology.postgres.url}  (cluster privé {topology.postgres.folder})",
            f"SMTP : 127.0.0.1:{topology.smtp.port}  (e-mails affichés ici et écrits dans {topology.smtp.spool})",
            f"Workers : {len(topology.workers)} processus `parcours worker` (pid {pids})",
            f"Journaux : {topology.logs}",
            f"Comptes de démonstration (mot de passe « {PASSWORD} ») :",
            *(f"  {email} — {role}" for email, role in DEMO_ACCOUNTS),
            "Ctrl-C pour tout arrêter.",
        ]
        print("\n".join(f"[prod-local] {line}" for line in lines), flush=True)
        await stop.wait()
        print("[prod-local] arrêt …", flush=True)
    print("[prod-local] arrêté" + (f" (données gardées dans {folder})" if folder else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.topology",
        description="La topologie de production sur cette machine (sans Docker), jusqu'à Ctrl-C.",
    )
    parser.add_argument("--workers", type=int, default=2, help="processus `parcours worker` (2)")
    parser.add_argument("--ui-workers", type=int, default=3, help="processus uvicorn de `parcours ui` (3)")
    parser.add_argument("--ui-port", type=int, default=None, help="port de l'interface (libre par défaut)")
    parser.add_argument("--dir", default=None, help="dossier gardé entre deux lancements (temporaire par défaut)")
    arguments = parser.parse_args()
    try:
        asyncio.run(serve(arguments))
    except (RuntimeError, TimeoutError) as error:
        print(f"[prod-local] échec : {error}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)  # the SDK's threads can abort CPython's finalisation (temporalio/sdk-python#300)


if __name__ == "__main__":
    main()
