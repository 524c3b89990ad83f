"""Concurrent caseworkers on the production topology: prints figures, asserts nothing.

    .venv/bin/python bench/caseworkers.py [--caseworkers 50] [--seconds 60] [--ui-workers 3] …

It starts the production topology without Docker (tests/topology.py: the read model on a private
PostgreSQL cluster, the Temporal dev server, an SMTP sink, two `parcours worker`, one `parcours
ui` with several uvicorn processes), creates `--caseworkers` caseworker accounts spread over the
territory's partner organisations, and starts `--pathways-per-caseworker` pathways for each, so
every organisation's inbox always holds more open tasks than its caseworkers have in hand. The
definition is one task in a loop (a short form; "Nouvel entretien" opens the next one).

Each caseworker signs in through the sign-in page (session cookie, CSRF token) with an HTTP
client of its own, on loopback, and loops as a browser would: inbox (GET /taches) → task page
(GET /taches/{id}) → complete (POST the form with its CSRF token and request id) → the page the
answer redirects to (the pathway page, GET /parcours/{id}; `--no-follow` skips it) → inbox,
thinking `--think` seconds (0.5x to 1.5x, at random) after each page. A caseworker takes the first
task of its inbox page that no colleague has in hand, as people sharing an inbox do.

Measured over `--seconds` after `--warmup`: p50/p95/p99 and counts per page, the hand-off (the
complete POST until its answer), errors by kind (any answer that is not 2xx/3xx, any transport
error), requests per second, the CPU of each kind of process (psutil), and the hand-off's share
spent in Temporal and the worker (from the pathways' histories). To see where the time goes, in
a separate run (each adds its own overhead): `--sql-log` logs every SQL statement's duration in
PostgreSQL during the window and ranks the statements; `--profile DIR` samples the UI and worker
processes with py-spy and prints where their busy samples are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import shutil
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402

from bench import figures  # noqa: E402
from bench.faults import machine  # noqa: E402
from services import administration  # noqa: E402
from store import models, views  # noqa: E402
from store import queries as q  # noqa: E402
from tests.topology import PASSWORD, Topology, until  # noqa: E402
from workflows.contract import OPERATOR  # noqa: E402

DEFINITION_ID = "bench_guichet"
DEFINITION = f"""
id: {DEFINITION_ID}
title: Banc d'essai – guichet des conseillers
status: active
basins: [all]
start: suivi
steps:
  - kind: task
    id: suivi
    title: Entretien de suivi
    role: referent
    deadline: 10 working days
    form:
      - {{id: synthese, label: Synthèse de l'entretien, type: text, required: true}}
      - {{id: mobile, label: Personne mobile, type: yes_no}}
    outcomes:
      - {{id: encore, label: Nouvel entretien, next: suivi}}
      - {{id: fini, label: Terminé, next: fin}}
  - {{kind: end, id: fin, title: Fin, exit_reason: formation}}
"""
DESIGNER = "marc.girard@example.org"
ORGANISATION_TYPES = ("france_travail", "mission_locale", "cap_emploi", "caf", "msa", "spip", "pjj", "association")
"""The partner organisations the caseworkers belong to. The Département is left out: the optional
background rows (`--background-pathways`) all sit in its inbox, where they would crowd out the tasks
the caseworkers can complete."""
SESSION_COOKIE = "parcours_session"
HANDOFF = "hand-off: complete POST /taches/{id}"
PAGES = {
    "inbox": "inbox GET /taches",
    "task": "task page GET /taches/{id}",
    "complete": HANDOFF,
    "pathway": "pathway page GET /parcours/{id} (after the complete)",
}
GOALS = {"complete": 0.100, "inbox": 0.150, "task": 0.150, "pathway": 0.150}


def say(message: str) -> None:
    print(f"[caseworkers {time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# --- Measurements -----------------------------------------------------------------------------


@dataclass
class Record:
    """Every request the caseworkers sent, kept only inside the measurement window."""

    window_start: float = math.inf
    window_end: float = math.inf
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    completions: int = 0
    starved: int = 0  # inbox pages without a task free for this caseworker

    def counts(self, started: float) -> bool:
        return self.window_start <= started < self.window_end

    def sample(self, page: str, started: float, elapsed: float) -> None:
        if self.counts(started):
            self.times[page].append(elapsed)
            self.requests += 1
            self.completions += page == "complete"

    def error(self, page: str, started: float, kind: str) -> None:
        if self.counts(started):
            self.errors[f"{PAGES[page]}: {kind}"] += 1
            self.requests += 1


def _error_detail(response: httpx.Response) -> str:
    """The French message a user saw: the alert or title of the page, or the JSON detail."""
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            return str(response.json().get("detail", ""))[:120]
        except ValueError:
            pass
    for pattern in (r'class="fr-alert__title">([^<]+)<', r"<p[^>]*fr-alert[^>]*>([^<]+)<", r"<title>([^<]+)</title>"):
        match = re.search(pattern, response.text)
        if match:
            return " ".join(match.group(1).split())[:120]
    return response.text[:120]


class Failed(Exception):
    """A request whose answer was not 2xx/3xx, or that got no answer (already recorded)."""


# --- One caseworker ---------------------------------------------------------------------------

TASK_LINK = re.compile(r'data-task="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')


@dataclass
class Caseworker:
    """One person at a browser: their own connection and session cookie. The session cookie is
    `Secure` in production mode; browsers send it to http://127.0.0.1, httpx's jar does not, so
    it is carried here by hand."""

    email: str
    organisation_id: str
    http: httpx.AsyncClient
    record: Record
    rng: random.Random
    think: float
    cookie: str = ""

    async def request(self, page: str, method: str, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        headers = {"Cookie": f"{SESSION_COOKIE}={self.cookie}"} if self.cookie else {}
        started = time.monotonic()
        try:
            response = await self.http.request(method, url, data=data, headers=headers)
        except httpx.TransportError as error:
            self.record.error(page, started, f"transport error {type(error).__name__}")
            raise Failed from error
        elapsed = time.monotonic() - started
        self.keep_cookie(response)
        if response.status_code >= 400:
            self.record.error(page, started, f"{response.status_code} « {_error_detail(response)} »")
            raise Failed(response.status_code)
        self.record.sample(page, started, elapsed)
        return response

    def keep_cookie(self, response: httpx.Response) -> None:
        self.http.cookies.clear()
        for header in response.headers.get_list("set-cookie"):
            if header.startswith(f"{SESSION_COOKIE}="):
                self.cookie = header.split(";", 1)[0].split("=", 1)[1]

    async def sign_in(self) -> None:
        """Through the sign-in page, as a person does (its CSRF token, then the form)."""
        page = await self.http.get("/connexion")
        self.keep_cookie(page)
        csrf = CSRF.search(page.text)
        if csrf is None:
            raise RuntimeError("no CSRF token on the sign-in page")
        answer = await self.http.post(
            "/connexion",
            data={"email": self.email, "password": PASSWORD, "csrf": csrf.group(1)},
            headers={"Cookie": f"{SESSION_COOKIE}={self.cookie}"},
        )
        self.keep_cookie(answer)
        if answer.status_code != 303 or not answer.headers.get("location", "").startswith("/taches"):
            raise RuntimeError(f"sign-in of {self.email} refused: {answer.status_code} {_error_detail(answer)}")

    async def pause(self, stop: float) -> None:
        """A person reads the page and fills the form: 0.5x to 1.5x the mean think time."""
        if self.think > 0:
            await asyncio.sleep(min(self.think * (0.5 + self.rng.random()), max(0.0, stop - time.monotonic())))

    async def loop(self, stop: float, in_hand: set[str], done: set[str], follow: bool) -> None:
        """inbox → task page → complete → (pathway page) → inbox, until `stop`."""
        while time.monotonic() < stop:
            task_id = None
            try:
                inbox = await self.request("inbox", "GET", "/taches")
                task_id = next((t for t in TASK_LINK.findall(inbox.text) if t not in in_hand and t not in done), None)
                if task_id is None:
                    if self.record.counts(time.monotonic()):
                        self.record.starved += 1
                    await self.pause(stop)
                    continue
                in_hand.add(task_id)
                await self.pause(stop)
                if time.monotonic() >= stop:
                    break
                page = await self.request("task", "GET", f"/taches/{task_id}")
                form = page.text.split(f'action="/taches/{task_id}"', 1)[-1].split("</form>", 1)[0]
                csrf, request_id = CSRF.search(form), REQUEST_ID.search(form)
                if csrf is None or request_id is None:
                    self.record.error("task", time.monotonic(), "no complete form on the task page")
                    raise Failed("no form")
                await self.pause(stop)
                if time.monotonic() >= stop:
                    break
                answer = await self.request(
                    "complete",
                    "POST",
                    f"/taches/{task_id}",
                    {
                        "csrf": csrf.group(1),
                        "request_id": request_id.group(1),
                        "champ.synthese": "Point fait avec la personne ; prochain entretien fixé.",
                        "champ.mobile": self.rng.choice(("oui", "non")),
                        "outcome": "encore",
                    },
                )
                done.add(task_id)
                location = answer.headers.get("location", "")
                if follow and location:
                    await self.request("pathway", "GET", location)
                await self.pause(stop)
            except Failed:
                await self.pause(stop)
            finally:
                if task_id is not None:
                    in_hand.discard(task_id)


# --- CPU of each kind of process --------------------------------------------------------------


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def process_kinds(topology: Topology) -> dict[str, list[psutil.Process]]:
    postmaster = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((topology.postgres.data / "postmaster.pid").read_text().split()[0])
    temporal = topology.temporal.process
    return {
        f"parcours ui ({topology.ui_workers} uvicorn processes)": _tree(topology.ui.pid),
        f"parcours worker (x{len(topology.workers)})": [p for w in topology.workers for p in _tree(w.pid)],
        "PostgreSQL (all backends)": _tree(postmaster),
        "Temporal dev server": _tree(temporal.pid if temporal else None),
        "this driver (HTTP clients, SMTP sink)": [psutil.Process(os.getpid())],
    }


def cpu_seconds(kinds: dict[str, list[psutil.Process]]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for kind, processes in kinds.items():
        out[kind] = {}
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            out[kind][process.pid] = times.user + times.system
    return out


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds per kind between two snapshots (a process born in between counts from 0)."""
    return {
        kind: sum(t - before.get(kind, {}).get(pid, 0.0) for pid, t in pids.items()) for kind, pids in after.items()
    }


# --- SQL statement log (optional) -------------------------------------------------------------

DURATION = re.compile(r"duration: ([0-9.]+) ms\s+(statement|parse|bind|execute)[^:]*: (.*)", re.DOTALL)


def set_statement_log(topology: Topology, milliseconds: int) -> None:
    """ALTER SYSTEM + reload: every backend logs each statement's duration from now on (-1: off)."""
    with topology.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"ALTER SYSTEM SET log_min_duration_statement = {milliseconds}"))
        connection.execute(text("SELECT pg_reload_conf()"))


def statement_summary(log: Path, offset: int, requests: int, top: int = 15) -> list[str]:
    """The statements that took the most time in total (parse and bind, where planning happens,
    included), their literals and parameters folded, from every process using the read model."""
    times: dict[str, list[float]] = defaultdict(list)  # execute (or simple query) durations
    prepared: defaultdict[str, float] = defaultdict(float)  # parse + bind durations
    with log.open("rb") as file:
        file.seek(offset)
        content = file.read().decode("utf-8", errors="replace")
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d )", content):  # an entry spans lines
        match = DURATION.search(entry)
        if not match:
            continue
        statement = re.sub(r"\$\d+|'[^']*'|\b\d+\b", "?", match.group(3))
        statement = re.sub(r"\(\?(, \?)+\)", "(…)", " ".join(statement.split()))
        if match.group(2) in ("parse", "bind"):
            prepared[statement] += float(match.group(1))
        else:
            times[statement].append(float(match.group(1)))
    every = sum(len(v) for v in times.values())
    total = sum(sum(v) for v in times.values()) + sum(prepared.values())
    ranked = sorted(times, key=lambda k: -(sum(times[k]) + prepared[k]))[:top]
    lines = [
        f"{every} statements ({every / max(1, requests):.1f} per caseworker request, workers' included), "
        f"{total / 1000:.1f} s in PostgreSQL",
        f"{'total ms':>9} {'count':>6} {'mean ms':>8} {'p95 ms':>7} {'plan ms':>8}  statement",
    ]
    for statement in ranked:
        values = times[statement]
        shown = statement if len(statement) <= 160 else statement[:159] + "…"
        lines.append(
            f"{sum(values) + prepared[statement]:9.0f} {len(values):6d} {sum(values) / len(values):8.2f} "
            f"{pct(values, 95):7.2f} {prepared[statement]:8.0f}  {shown}"
        )
    return lines


# --- The hand-off's share in Temporal and the worker ----------------------------------------

SCHEDULED, STARTED, COMPLETED = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
)
ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


async def update_tasks(topology: Topology, since: datetime, until_: datetime, pathways: int) -> dict[str, list[float]]:
    """From the histories of up to `pathways` pathways: for each workflow task that ran a
    completion (an update accepted) inside the window, its wait for a worker (scheduled →
    started) and its run in the worker (started → completed, the read-model commit included, a
    local activity); the update's answer leaves when that task completes."""
    with topology.engine.connect() as connection:
        ids = [
            i
            for (i,) in connection.execute(
                text("SELECT id FROM pathway WHERE definition_id = :d ORDER BY random() LIMIT :n"),
                {"d": DEFINITION_ID, "n": pathways},
            )
        ]
    out: dict[str, list[float]] = {"wait": [], "run": [], "total": []}
    assert topology.client is not None
    for pathway_id in ids:
        marks: dict[int, datetime] = {}
        async for event in topology.client.get_workflow_handle(pathway_id).fetch_history_events():
            at = event.event_time.ToDatetime(tzinfo=UTC)
            if event.event_type in (SCHEDULED, STARTED):
                marks[event.event_type] = at
            elif event.event_type == COMPLETED:
                marks[COMPLETED] = at
            elif event.event_type == ACCEPTED and SCHEDULED in marks and since <= marks[SCHEDULED] < until_:
                scheduled, started, completed = marks[SCHEDULED], marks[STARTED], marks[COMPLETED]
                out["wait"].append((started - scheduled).total_seconds())
                out["run"].append((completed - started).total_seconds())
                out["total"].append((completed - scheduled).total_seconds())
    return out


# --- Profiles (optional) ----------------------------------------------------------------------

PY_SPY = str(Path(sys.executable).parent / "py-spy")
LAYERS = (
    ("Jinja2 templates", ("jinja2/", ".html")),
    ("psycopg (driver, and waits on PostgreSQL)", ("psycopg/", "psycopg_pool/")),
    ("SQLAlchemy / SQLModel", ("sqlalchemy/", "sqlmodel/")),
    ("Temporal SDK (client, worker)", ("temporalio/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("session cookie, CSRF", ("itsdangerous/", "starlette/middleware/sessions")),
    ("Starlette / FastAPI / uvicorn", ("starlette/", "fastapi/", "uvicorn/", "h11/", "anyio/", "multipart/")),
    ("Parcours code", ("admin_ui/", "services/", "store/", "definitions/", "parcours/", "workflows/", "activities/")),
    ("asyncio, threads, other", ("",)),
)
IDLE = frozenset({"select", "EpollSelector.select", "wait", "Condition.wait", "Queue.get", "SimpleQueue.get"})
FRAME = re.compile(r"^(.*) \((.*):\d+\)$")


@dataclass
class Profile:
    kind: str
    pid: int
    output: Path
    process: asyncio.subprocess.Process | None = None


def start_profiles(topology: Topology, folder: Path, seconds: float) -> list[asyncio.Task[Profile]]:
    """One `py-spy record` per UI and worker process, for the window (non-blocking sampling)."""
    folder.mkdir(parents=True, exist_ok=True)
    targets = [("ui", pid) for pid in topology.ui_processes()] + [("worker", w.pid) for w in topology.workers]

    async def record(kind: str, pid: int) -> Profile:
        profile = Profile(kind, pid, folder / f"{kind}-{pid}.txt")
        for _ in range(3):  # py-spy sometimes fails to read the interpreter's version: try again
            process = await asyncio.create_subprocess_exec(
                PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
                "--format", "raw", "--output", str(profile.output), "--nonblocking",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await process.wait()
            if profile.output.exists():
                break
        return profile

    return [asyncio.create_task(record(kind, pid)) for kind, pid in targets]


def _layer(frames: list[tuple[str, str]]) -> str:
    """The layer of the deepest frame that belongs to one (a leaf in the standard library counts
    for its caller's layer)."""
    for _, path in reversed(frames):
        for name, marks in LAYERS[:-1]:
            if any(mark in path for mark in marks):
                return name
    return LAYERS[-1][0]


async def finish_profiles(tasks: list[asyncio.Task[Profile]], top: int = 12) -> list[str]:
    """Per kind of process: where the busy samples are, by layer (the deepest frame's) and by
    Parcours function (inclusive)."""
    profiles = await asyncio.gather(*tasks)
    lines: list[str] = []
    for kind in ("ui", "worker"):
        layers: Counter[str] = Counter()
        functions: Counter[str] = Counter()
        total = 0
        for profile in (p for p in profiles if p.kind == kind and p.output.exists()):
            for line in profile.output.read_text(errors="replace").splitlines():
                stack, _, count_text = line.rpartition(" ")
                if not count_text.isdigit():
                    continue
                count = int(count_text)
                frames = [(m.group(1), m.group(2)) for m in map(FRAME.match, stack.split(";")) if m]
                if frames and frames[-1][0] in IDLE:
                    continue  # idle: the event loop or a thread waiting for work
                total += count
                layers[_layer(frames)] += count
                ours = {f"{function} ({path})" for function, path in frames if any(m in path for m in LAYERS[-2][1])}
                for name in ours:
                    functions[name] += count
        if not total:
            lines.append(f"{kind}: no profile (py-spy failed)")
            continue
        lines.append(f"{kind} processes, {total} busy samples; by layer of the deepest frame:")
        lines += [f"  {count / total * 100:5.1f} %  {name}" for name, count in layers.most_common()]
        lines.append(f"{kind}: Parcours functions (inclusive):")
        lines += [f"  {count / total * 100:5.1f} %  {name}" for name, count in functions.most_common(top)]
    return lines


# --- Setting up -------------------------------------------------------------------------------


async def publish(topology: Topology) -> None:
    async with await topology.api(DESIGNER) as designer:
        response = await designer.http.post(
            "/api/definitions",
            content=DEFINITION.encode(),
            headers={"Content-Type": "application/yaml", "Idempotency-Key": str(uuid.uuid4())},
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"publishing failed: {response.status_code} {response.text}")


def create_caseworkers(topology: Topology, count: int) -> list[tuple[str, str, str]]:
    """(email, organisation, basin) for `count` new caseworker accounts, spread round-robin over
    the partner organisations (the basin: one they serve, for the pathways they start)."""
    basins = sorted(b.id for b in views.list_basins(topology.engine))
    organisations = sorted(
        (o for o in q.list_organisations(topology.engine) if o.type in ORGANISATION_TYPES), key=lambda o: o.id
    )
    people = []
    for n in range(count):
        organisation = organisations[n % len(organisations)]
        served = basins if "all" in organisation.basins else organisation.basins
        email = f"conseiller.{n + 1:03d}@bench.example.org"
        administration.create_user(
            topology.engine,
            actor=OPERATOR,
            email=email,
            name=f"Conseiller·e {n + 1:03d}",
            organisation=organisation.id,
            role="caseworker",
        )
        people.append((email, organisation.id, served[(n // len(organisations)) % len(served)]))
    return people


async def start_pathways(topology: Topology, people: list[tuple[str, str, str]], each: int) -> int:
    """`each` pathways per caseworker, started through the API by one colleague per organisation."""
    by_organisation: dict[str, list[str]] = defaultdict(list)
    for _, organisation, basin in people:
        by_organisation[organisation].append(basin)
    gate = asyncio.Semaphore(8)
    started = 0

    async def organisation_starts(organisation: str, basins: list[str]) -> None:
        nonlocal started
        email = next(e for e, o, _ in people if o == organisation)
        async with await topology.api(email, timeout=120.0) as user:

            async def one(basin: str, n: int) -> None:
                nonlocal started
                person = {"first_name": "Alex", "last_name": f"Guichet-{organisation}-{n}", "consent": True}
                async with gate:
                    response = await user.start_pathway(
                        DEFINITION_ID, basin=basin, person=person, request_id=str(uuid.uuid4())
                    )
                if response.status_code != 201:
                    raise RuntimeError(f"start refused: {response.status_code} {response.text}")
                started += 1

            await asyncio.gather(*(one(basin, n) for n, basin in enumerate(basins * each)))

    await asyncio.gather(*(organisation_starts(o, b) for o, b in by_organisation.items()))
    return started


def open_tasks(topology: Topology) -> int:
    with topology.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(models.Task)
                .where(models.Task.definition_id == DEFINITION_ID, models.Task.status == "open")  # type: ignore[arg-type]
            ).scalar_one()
        )


async def seed_background(topology: Topology, pathways: int) -> None:
    """Rows shaped like real use (bench/ui.py's seed), all in the Département's inbox."""
    from bench.ui import seed

    began = time.monotonic()
    await asyncio.to_thread(seed, topology.engine, pathways=pathways, tasks_per_pathway=5)
    say(f"background: {pathways:,} pathways and {pathways * 5:,} tasks seeded in {time.monotonic() - began:.0f}s")


# --- The run ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    record: Record
    seconds: float
    cpu: dict[str, float]
    machine_cpu: float  # share of all cores busy during the window (every process on the machine)
    load_before: tuple[float, float, float]
    statements: list[str]
    temporal: dict[str, list[float]]
    profiles: list[str]


async def run(arguments: argparse.Namespace) -> Outcome:
    say(f"starting the production topology ({machine()})")
    async with Topology(workers=arguments.workers, ui_workers=arguments.ui_workers) as topology:
        try:
            return await measure(topology, arguments)
        finally:
            if arguments.logs:
                shutil.copytree(topology.logs, arguments.logs, dirs_exist_ok=True)


async def measure(topology: Topology, arguments: argparse.Namespace) -> Outcome:
    await publish(topology)
    if arguments.background_pathways:
        await seed_background(topology, arguments.background_pathways)
    people = await asyncio.to_thread(create_caseworkers, topology, arguments.caseworkers)
    await topology.ensure_passwords(*(email for email, _, _ in people))
    organisations = len({o for _, o, _ in people})
    began = time.monotonic()
    started = await start_pathways(topology, people, arguments.pathways_per_caseworker)
    await until(lambda: open_tasks(topology) >= started, timeout=300, what=f"{started} open tasks in the read model")
    say(
        f"{arguments.caseworkers} caseworkers in {organisations} organisations; {started} pathways started "
        f"({arguments.pathways_per_caseworker} per caseworker) in {time.monotonic() - began:.0f}s"
    )

    record = Record()
    rng = random.Random(arguments.seed)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)  # one browser connection each
    caseworkers = [
        Caseworker(
            email=email,
            organisation_id=organisation,
            http=httpx.AsyncClient(base_url=topology.ui_url, timeout=30.0, follow_redirects=False, limits=limits),
            record=record,
            rng=random.Random(rng.random()),
            think=arguments.think,
        )
        for email, organisation, _ in people
    ]
    try:
        gate = asyncio.Semaphore(10)

        async def signing_in(caseworker: Caseworker) -> None:
            async with gate:
                await caseworker.sign_in()

        await asyncio.gather(*(signing_in(c) for c in caseworkers))
        say(
            f"{len(caseworkers)} caseworkers signed in; warm-up {arguments.warmup:.0f}s, then {arguments.seconds:.0f}s measured"
        )

        kinds = process_kinds(topology)
        now = time.monotonic()
        record.window_start = now + arguments.warmup
        record.window_end = record.window_start + arguments.seconds
        stop = record.window_end
        in_hand: set[str] = set()
        done: set[str] = set()
        loops = [asyncio.create_task(c.loop(stop, in_hand, done, arguments.follow)) for c in caseworkers]
        await asyncio.sleep(max(0.0, record.window_start - time.monotonic()))
        load_before = os.getloadavg()
        log_offset = topology.postgres.log.stat().st_size if topology.postgres.log.exists() else 0
        if arguments.sql_log:
            await asyncio.to_thread(set_statement_log, topology, 0)
        profiles = start_profiles(topology, arguments.profile, arguments.seconds) if arguments.profile else []
        cpu_before, machine_before, measured_from = cpu_seconds(kinds), psutil.cpu_times(), time.monotonic()
        wall_from = datetime.now(UTC)
        await asyncio.sleep(max(0.0, record.window_end - time.monotonic()))
        kinds = process_kinds(topology)  # the backends born during the window too
        cpu_after, machine_after, measured_to = cpu_seconds(kinds), psutil.cpu_times(), time.monotonic()
        wall_to = datetime.now(UTC)
        if arguments.sql_log:
            await asyncio.to_thread(set_statement_log, topology, -1)
        await asyncio.gather(*loops)
        profiled = await finish_profiles(profiles) if profiles else []
    finally:
        await asyncio.gather(*(c.http.aclose() for c in caseworkers))
    wall = measured_to - measured_from
    busy = sum(
        getattr(machine_after, n) - getattr(machine_before, n) for n in ("user", "system", "nice", "irq", "softirq")
    )
    total = sum(machine_after) - sum(machine_before)
    statements = statement_summary(topology.postgres.log, log_offset, record.requests) if arguments.sql_log else []
    temporal = await update_tasks(topology, wall_from, wall_to, arguments.histories)
    return Outcome(
        record=record,
        seconds=wall,
        cpu=cpu_used(cpu_before, cpu_after),
        machine_cpu=busy / total if total > 0 else float("nan"),
        load_before=load_before,
        statements=statements,
        temporal=temporal,
        profiles=profiled,
    )


# --- Report -----------------------------------------------------------------------------------


def caseworker_figures(outcome: Outcome, arguments: argparse.Namespace) -> list[figures.Figure]:
    record, who = outcome.record, f"{arguments.caseworkers} caseworkers"
    found = [
        figures.Figure(
            "caseworkers",
            f"{who}: {name} p50 / p95",
            f"{pct(values, 50) * 1000:.0f} / {pct(values, 95) * 1000:.0f} ms",
            f"p95 < {GOALS[key] * 1000:.0f} ms",
            pct(values, 95) < GOALS[key],
        )
        for key, name in PAGES.items()
        if (values := record.times.get(key, []))
    ]
    errors = sum(record.errors.values())
    return [
        *found,
        figures.Figure("caseworkers", f"{who}: errors", str(errors), "0", errors == 0),
        figures.Figure(
            "caseworkers",
            f"{who}: throughput",
            f"{record.requests / outcome.seconds:.1f} requests/s, {record.completions / outcome.seconds:.1f} tasks/s",
        ),
    ]


def report(outcome: Outcome, arguments: argparse.Namespace, began: datetime) -> str:
    record = outcome.record
    lines = [
        f"Concurrent caseworkers, {began:%Y-%m-%d %H:%M} UTC, on {machine()}",
        f"{arguments.caseworkers} caseworkers, each its own signed-in session; {arguments.seconds:.0f}s measured after "
        f"{arguments.warmup:.0f}s of warm-up; think {arguments.think:g}s after each page; "
        f"{arguments.workers} workers, 1 UI with {arguments.ui_workers} uvicorn processes, PostgreSQL; "
        f"{arguments.pathways_per_caseworker} pathways per caseworker"
        + (f"; {arguments.background_pathways:,} background pathways" if arguments.background_pathways else "")
        + f"; load average before the window {outcome.load_before[0]:.2f}",
        "",
        "| page | count | p50 ms | p95 ms | p99 ms | max ms | goal | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for key, name in PAGES.items():
        values = record.times.get(key, [])
        if not values and key == "pathway" and not arguments.follow:
            continue
        goal = GOALS[key]
        p95 = pct(values, 95)
        met = "yes" if values and p95 < goal else "**no**"
        figures = " | ".join(f"{pct(values, p) * 1000:.1f}" for p in (50, 95, 99)) if values else "— | — | —"
        top = f"{max(values) * 1000:.1f}" if values else "—"
        lines.append(f"| {name} | {len(values)} | {figures} | {top} | p95 < {goal * 1000:.0f} ms | {met} |")
    errors = sum(record.errors.values())
    lines.append(f"| errors (non-2xx/3xx, transport) | {errors} | | | | | 0 | {'yes' if errors == 0 else '**no**'} |")
    lines.append("")
    for kind, count in record.errors.most_common():
        lines.append(f"- error ×{count}: {kind}")
    lines.append(
        f"- throughput: {record.requests / outcome.seconds:.1f} requests/s, "
        f"{record.completions / outcome.seconds:.1f} tasks completed/s ({record.requests} requests, "
        f"{record.completions} completions in {outcome.seconds:.1f}s)"
        + (f"; {record.starved} inbox pages without a free task" if record.starved else "")
    )
    cpu = ", ".join(f"{kind} {seconds / outcome.seconds * 100:.0f} %" for kind, seconds in outcome.cpu.items())
    lines.append(
        f"- CPU (100 % = one core; {os.cpu_count()} cores): {cpu}; whole machine {outcome.machine_cpu * 100:.0f} % busy"
    )
    ui = next((seconds for kind, seconds in outcome.cpu.items() if kind.startswith("parcours ui")), 0.0)
    workers = next((seconds for kind, seconds in outcome.cpu.items() if kind.startswith("parcours worker")), 0.0)
    if record.requests and record.completions:
        lines.append(
            f"- CPU per request in the UI processes {ui / record.requests * 1000:.1f} ms; "
            f"in the workers per completion {workers / record.completions * 1000:.1f} ms"
        )
    if outcome.temporal["total"]:
        share = outcome.temporal
        lines.append(
            f"- hand-off in Temporal and the worker ({len(share['total'])} completions, from the histories): "
            + ", ".join(
                f"{label} p50 {pct(share[key], 50) * 1000:.1f} ms p95 {pct(share[key], 95) * 1000:.1f} ms"
                for key, label in (
                    ("wait", "waiting for a worker"),
                    ("run", "workflow task with the read-model commit"),
                    ("total", "together"),
                )
            )
            + "; the rest of the hand-off is the UI process (checks, form, request log, submission, session)"
        )
    if outcome.profiles:
        lines += ["", "Profiles (py-spy, samples of busy threads during the window):", "```"]
        lines += [*outcome.profiles, "```"]
    if outcome.statements:
        lines += ["", "SQL statements by total time during the window (log_min_duration_statement = 0):", "```"]
        lines += [*outcome.statements, "```"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--caseworkers", type=int, default=50, help="simulated caseworkers (50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring (5)")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds a caseworker spends on a page (1.0)")
    parser.add_argument("--ui-workers", type=int, default=3, help="uvicorn processes of `parcours ui` (3)")
    parser.add_argument("--workers", type=int, default=2, help="`parcours worker` processes (2)")
    parser.add_argument("--pathways-per-caseworker", type=int, default=10, help="pathways started per caseworker (10)")
    parser.add_argument(
        "--background-pathways", type=int, default=0, help="extra read-model rows, in the Département's inbox (0)"
    )
    parser.add_argument(
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the complete, load the page the answer redirects to, as a browser does (on)",
    )
    parser.add_argument("--sql-log", action="store_true", help="log and rank SQL statements during the window")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the UI and worker processes during the window, into this folder",
    )
    parser.add_argument(
        "--histories", type=int, default=100, help="pathway histories read for the hand-off's Temporal share (100)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--figures", type=Path, default=None, help="append the figures to this file (bench/summary.py)")
    parser.add_argument("--logs", type=Path, default=None, help="copy the processes' logs to this folder at the end")
    arguments = parser.parse_args()
    began = datetime.now(UTC)
    try:
        outcome = asyncio.run(run(arguments))
    except Exception as error:  # noqa: BLE001  (a bench reports, then exits non-zero)
        say(f"failed: {error!r}")
        os._exit(1)
    table = report(outcome, arguments, began)
    figures.write(arguments.figures, caseworker_figures(outcome, arguments))
    print("\n" + table + "\n", flush=True)
    if arguments.markdown:
        arguments.markdown.write_text(table + "\n")
    os._exit(0)  # the SDK's threads can abort CPython's finalisation (temporalio/sdk-python#300)


if __name__ == "__main__":
    main()
