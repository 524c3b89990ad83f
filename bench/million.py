"""A million pathways: the read model's list pages at the size of a large territory. Prints
figures, asserts nothing.

    .venv/bin/python bench/million.py [--pathways 1000000] [--tasks-per-pathway 5] [--repeat 50]
                                      [--keep] [--reuse] [--explain]

Seeds its own PostgreSQL database (`parcours_million` on 127.0.0.1:5432, never the test suite's)
with COPY: the demo territory's 4 basins, the catalog's definitions, one person per pathway,
pathways (60 % closed, 37 % active, 3 % paused; active ones on time, due soon, overdue or
escalated), their tasks (on average --tasks-per-pathway, on the definitions' real steps and the
organisations serving each basin) with their timeline steps (and the parallel groups), follow-up
groups and escalations. The schema is the project's
own: the Alembic revisions up to BEFORE, the revision the read-model indexes for this scale
build on.

Then it times, p50/p95 over --repeat calls with varied users, basins, filters and pages, the
pages as a browser or an API client gets them (in-process ASGI requests) and the query functions
they call: the GTO dashboard, a caseworker's inbox, the stuck-pathway list, the statistics; goal
p95 < 100 ms. It measures once at revision BEFORE, upgrades to head with `upgrade_to_head` (the
revisions after BEFORE add the indexes) and measures again: before and after, in the same run.
With --reuse a kept database is used again (brought back to BEFORE by the revisions' own
downgrades); --keep keeps it for such reruns, otherwise it is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from alembic import command  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from admin_ui.app import create_app  # noqa: E402
from admin_ui.pages import gto  # noqa: E402
from bench import figures  # noqa: E402
from definitions.loader import load_file  # noqa: E402
from definitions.schema import EXIT_REASONS, Definition, ParallelStep, TaskStep  # noqa: E402
from definitions.territory import CATALOG_DIR, DEMO_TERRITORY, load_territory  # noqa: E402
from parcours.settings import Settings  # noqa: E402
from services import evaluation_facts, reading  # noqa: E402
from services.identity import set_password  # noqa: E402
from services.pathways import PathwayService  # noqa: E402
from store import queries as q  # noqa: E402
from store import views  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.migrations import alembic_config, head_revision, upgrade_to_head  # noqa: E402

ADMIN_URL = os.environ.get("PARCOURS_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATABASE = "parcours_million"
BEFORE = "0005"
"""The last revision without the indexes this benchmark asked for (0006 adds them)."""
PASSWORD = "mot-de-passe-bench-2026"
GOAL_S = 0.100
BULK_TABLES = ("person", "pathway", "task", "pathway_step", "follow_up_member", "escalation")

# Shares of the seeded pathways and of the active ones' deadline states (bench/ui.py's mix).
CLOSED, PAUSED = 0.60, 0.03
SLA_MIX = ["on_time"] * 70 + ["due_soon"] * 10 + ["overdue"] * 12 + ["escalated"] * 8
DEFINITION_MIX = {"rsa_socio_pro": 40, "jeune_neet_mission_locale": 25, "deld_immersion": 25, "boe_cap_emploi": 10}
FIRST_NAMES = ["Nadia", "Thomas", "Lea", "Karim", "Sophie", "Hugo", "Ines", "Lucas", "Manon", "Yanis", "Emma", "Jules"]
LAST_NAMES = ["Martin", "Bernard", "Roux", "Haddad", "Morel", "Girod", "Favre", "Blanc", "Perrin", "Masson", "Vidal"]
DAY = 86_400


def say(line: str = "") -> None:
    print(line, flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def p50_p95(values: list[float]) -> str:
    return f"{pct(values, 50) * 1000:7.1f} / {pct(values, 95) * 1000:7.1f} ms"


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def libpq(url: str) -> str:
    """The SQLAlchemy URL as psycopg's own connection string (for COPY)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# --- Schema ----------------------------------------------------------------------------------


def database_exists(name: str) -> bool:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return (
                connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                is not None
            )
    finally:
        admin.dispose()


def recreate_database(name: str, *, drop_only: bool = False) -> None:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if not drop_only:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def revision_of(engine: Engine) -> str | None:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


def migrate(engine: Engine, revision: str, *, down: bool = False) -> float:
    """Run the project's revisions up (or down) to `revision`; returns the seconds it took."""
    started = time.perf_counter()
    with engine.begin() as connection:
        if down:
            command.downgrade(alembic_config(connection), revision)
        else:
            command.upgrade(alembic_config(connection), revision)
    return time.perf_counter() - started


# --- Seeding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One step of a definition's main flow that gives tasks: a task, or a parallel group."""

    tasks: tuple[TaskStep, ...]
    group: ParallelStep | None = None


@dataclass
class Plan:
    """What a seeded pathway may look like: the definitions' stages, who holds each task in each
    basin, and the users the measures act as."""

    basins: list[str]
    stages: dict[str, list[Stage]]
    holders: dict[tuple[str, str, str], str]  # (definition, basin, step) -> organisation
    referents: dict[tuple[str, str], str]  # (definition, basin) -> organisation
    gto_leads: list[str] = field(default_factory=list)


def definition_stages(definition: Definition) -> list[Stage]:
    stages = []
    for step in definition.steps:
        if isinstance(step, TaskStep):
            stages.append(Stage((step,)))
        elif isinstance(step, ParallelStep):
            stages.append(Stage(tuple(step.branches), step))
    return stages


def make_plan(engine: Engine, definitions: dict[str, Definition]) -> Plan:
    organisations = q.list_organisations(engine)
    basins = [b.id for b in views.list_basins(engine)]
    plan = Plan(basins=sorted(basins), stages={}, holders={}, referents={})
    for definition_id, definition in definitions.items():
        plan.stages[definition_id] = stages = definition_stages(definition)
        first_role = stages[0].tasks[0].role
        for basin in plan.basins:
            serving = q.serving_by_type(organisations, basin_id=basin)
            # The referent is the organisation that runs the first step (département, Mission
            # Locale, France Travail, Cap Emploi).
            referent = serving[first_role.removeprefix("partner:")].id
            plan.referents[(definition_id, basin)] = referent
            for stage in stages:
                for task in stage.tasks:
                    kind = task.role.removeprefix("partner:")
                    plan.holders[(definition_id, basin, task.id)] = (
                        referent if task.role == "referent" else serving[kind].id
                    )
    return plan


class Clock:
    """Timestamps as COPY text from integer seconds, through two lookup tables (day, time of
    day): formatting 20 million datetimes one by one would be most of the seeding time."""

    def __init__(self, now: datetime) -> None:
        self.now = int(now.timestamp())
        self.first_day = self.now // DAY - 6 * 366
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        self.days = [
            (epoch + timedelta(days=d)).strftime("%Y-%m-%d ") for d in range(self.first_day, self.now // DAY + 400)
        ]
        self.times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(DAY)]

    def text(self, seconds: int) -> str:
        return self.days[seconds // DAY - self.first_day] + self.times[seconds % DAY]


COLUMNS = {
    "person": "id, first_name, last_name, birth_date, email, phone, nir, france_travail_id, consent_at, "
    "consent_by, created_at, anonymised_at",
    "pathway": "id, definition_id, definition_version, basin_id, referent_org, status, current_steps, sla, "
    "stuck_since, started_at, updated_at, last_progress_at, closed_at, exit_reason, person_id, revision",
    "task": "id, pathway_id, step_id, title, definition_id, basin_id, organisation_id, status, sla, due_at, "
    "opened_at, closed_at, escalation_level, outcome, generation, submission_id",
    "pathway_step": "id, pathway_id, step_id, title, kind, track, status, opened_at, closed_at, outcome",
    "follow_up_member": "pathway_id, organisation_id, since, until",
    "escalation": 'id, pathway_id, task_id, step_id, basin_id, level, "to", status, opened_at, decided_at, '
    "decided_by, action, note_id",
}
NULL = "\\N"


class Copies:
    """One COPY ... FREEZE per table, each on its own connection (TRUNCATE and COPY in one
    transaction: rows land frozen and all-visible, as a vacuumed table), fed at once while the
    rows are generated; PostgreSQL parses them on the other core."""

    def __init__(self, url: str, stack: ExitStack) -> None:
        self.buffers: dict[str, list[str]] = {name: [] for name in BULK_TABLES}
        self.copies: dict[str, Any] = {}
        self.rows: dict[str, int] = dict.fromkeys(BULK_TABLES, 0)
        for name in BULK_TABLES:
            connection = stack.enter_context(psycopg.connect(libpq(url)))
            connection.execute(f'TRUNCATE "{name}"')
            cursor = stack.enter_context(connection.cursor())
            self.copies[name] = stack.enter_context(cursor.copy(f'COPY "{name}" ({COLUMNS[name]}) FROM STDIN (FREEZE)'))

    def add(self, table: str, *values: object) -> None:
        buffer = self.buffers[table]
        buffer.append("\t".join(NULL if v is None else str(v) for v in values))
        if len(buffer) >= 4000:
            self.flush(table)

    def flush(self, table: str) -> None:
        buffer = self.buffers[table]
        if buffer:
            self.copies[table].write("\n".join(buffer) + "\n")
            self.rows[table] += len(buffer)
            buffer.clear()


def generate(copies: Copies, plan: Plan, clock: Clock, *, pathways: int, tasks_per_pathway: int) -> None:
    """Rows shaped like years of use of a large territory."""
    rng = random.Random(2026)
    now = clock.now
    definition_ids = list(DEFINITION_MIX)
    weights = list(DEFINITION_MIX.values())
    outcomes = {task.id: task.outcomes[0].id for stages in plan.stages.values() for s in stages for task in s.tasks}
    exits = list(EXIT_REASONS)
    leads = plan.gto_leads or ["gto"]
    for n in range(pathways):
        pid = f"P-{n:016X}"
        definition = rng.choices(definition_ids, weights)[0]
        basin = plan.basins[rng.randrange(len(plan.basins))]
        referent = plan.referents[(definition, basin)]
        roll = rng.random()
        status = "closed" if roll < CLOSED else ("paused" if roll < CLOSED + PAUSED else "active")
        count = 1 + rng.randrange(2 * tasks_per_pathway - 1)  # 1 .. 2N-1 tasks, N on average
        if status == "closed":
            started = now - rng.randrange(60, 1460) * DAY - rng.randrange(DAY)
            progress = started + rng.randrange(30, min(400, (now - started) // DAY)) * DAY
            closed_at: int | None = progress
            sla = None
        else:
            started = now - rng.randrange(1, 365) * DAY - rng.randrange(DAY)
            age = now - started
            if status == "paused":
                progress = now - min(age, rng.randrange(10, 90) * DAY)
                sla = "on_time"
            else:
                progress = now - min(age, int(rng.expovariate(1 / (7 * DAY))))
                sla = rng.choice(SLA_MIX)
            closed_at = None
        # The tasks, stage after stage (looping on long pathways); the last stage reached is
        # open on a running pathway.
        stages = plan.stages[definition]
        chosen: list[tuple[int, TaskStep]] = []
        stage_index = 0
        while len(chosen) < count:
            for task in stages[stage_index % len(stages)].tasks:
                if len(chosen) < count:
                    chosen.append((stage_index, task))
            stage_index += 1
        last_stage = chosen[-1][0]
        span = max(1, progress - started)
        open_steps: list[str] = []
        first_seen: dict[str, int] = {referent: started}
        first_done_task: tuple[str, str] | None = None
        open_task: tuple[str, str, int, int] | None = None  # id, step, deadline, escalation level
        for seq, (stage, task) in enumerate(chosen, start=1):
            task_id = f"{pid}-{seq}"
            holder = plan.holders[(definition, basin, task.id)]
            opened = started + span * stage // (last_stage + 1)
            is_open = status != "closed" and stage == last_stage
            done = progress
            if is_open:
                opened = progress
                if sla == "on_time":
                    due = now + rng.randrange(3 * DAY, 40 * DAY)
                elif sla == "due_soon":
                    due = now + rng.randrange(3 * DAY)
                elif sla == "overdue":
                    due = now - rng.randrange(1, 10 * DAY)
                else:
                    due = now - rng.randrange(5 * DAY, 40 * DAY)
                level = 0 if sla != "escalated" else (1 if rng.random() < 0.75 else 2)
                open_steps.append(task.id)
                if open_task is None:
                    open_task = (task_id, task.id, due, level)
                copies.add(
                    "task", task_id, pid, task.id, task.title, definition, basin, holder, "open", sla,
                    clock.text(due), clock.text(opened), None, level, None, 0, None,
                )  # fmt: skip
            else:
                done = min(progress, opened + span // (last_stage + 1))
                if first_done_task is None:
                    first_done_task = (task_id, task.id)
                copies.add(
                    "task", task_id, pid, task.id, task.title, definition, basin, holder, "done", None,
                    clock.text(opened + 15 * DAY), clock.text(opened), clock.text(done), 0, outcomes[task.id], 0, None,
                )  # fmt: skip
            first_seen.setdefault(holder, opened)
            # The timeline: the task's step, and its parallel group once per visit.
            state, ended = ("open", None) if is_open else ("done", clock.text(done))
            copies.add(
                "pathway_step", f"{task_id}-s", pid, task.id, task.title, "task", "main", state, clock.text(opened),
                ended, None if is_open else outcomes[task.id],
            )  # fmt: skip
            group = stages[stage % len(stages)].group
            if group is not None and task is group.branches[0]:
                copies.add(
                    "pathway_step", f"{task_id}-g", pid, group.id, group.title, "group", "main", state,
                    clock.text(opened), ended, None,
                )  # fmt: skip
        stuck_since = open_task[2] if open_task and sla in ("overdue", "escalated") else None
        copies.add(
            "pathway", pid, definition, 1, basin, referent, status, json.dumps(open_steps), sla,
            None if stuck_since is None else clock.text(stuck_since), clock.text(started), clock.text(progress),
            clock.text(progress), None if closed_at is None else clock.text(closed_at),
            rng.choice(exits) if status == "closed" else None, f"pers-{n:012x}", count + 1,
        )  # fmt: skip
        until = None if closed_at is None else clock.text(closed_at)
        for organisation, since in first_seen.items():
            copies.add("follow_up_member", pid, organisation, clock.text(since), until)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        born = f"{1962 + n % 45}-{1 + n % 12:02d}-{1 + n % 28:02d}"
        if closed_at is not None and closed_at < now - 730 * DAY:  # past retention: anonymised
            copies.add(
                "person", f"pers-{n:012x}", "Personne", "anonymisée", None, None, None, None, None,
                clock.text(started), "u-bench", clock.text(started), clock.text(closed_at + 731 * DAY),
            )  # fmt: skip
        else:
            copies.add(
                "person", f"pers-{n:012x}", first, last, born, f"{first}.{last}.{n}@example.org".lower(),
                f"06 {n % 100:02d} {n // 100 % 100:02d} {n // 10_000 % 100:02d} 00",
                f"{1 + n % 2} {n % 90 + 10:02d} {n % 12 + 1:02d} 74 {n % 1000:03d} {n % 997:03d} {n % 97:02d}",
                f"FT{n:08d}", clock.text(started), "u-bench", clock.text(started), None,
            )  # fmt: skip
        # Escalations: open ones on an escalated task (level 1 to the GTO, level 2 to the SPIE
        # direction), and decided ones in the history of some others.
        if sla == "escalated" and open_task is not None:
            task_id, step_id, due, levels = open_task
            for level in range(1, levels + 1):
                copies.add(
                    "escalation", f"{task_id}-g0-n{level}", pid, task_id, step_id, basin, level,
                    "gto" if level == 1 else "spie_direction", "open", clock.text(min(now - 3600, due + 5 * level * DAY)),
                    None, None, None, None,
                )  # fmt: skip
        elif first_done_task is not None and rng.random() < (0.08 if status == "closed" else 0.05):
            task_id, step_id = first_done_task
            opened = started + span // 3
            copies.add(
                "escalation", f"{task_id}-g0-n1", pid, task_id, step_id, basin, 1, "gto",
                rng.choice(["decided", "resolved"]), clock.text(opened), clock.text(opened + 2 * DAY),
                rng.choice(leads), rng.choice(["extend", "reassign", "unblock"]), None,
            )  # fmt: skip
    for table in BULK_TABLES:
        copies.flush(table)


def secondary_indexes(engine: Engine) -> list[tuple[str, str]]:
    """The bulk tables' indexes other than their primary keys: (name, CREATE INDEX statement)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(:t) "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname"
            ),
            {"t": list(BULK_TABLES)},
        ).all()
    return [(name, definition) for name, definition in rows]


def seed(engine: Engine, url: str, *, pathways: int, tasks_per_pathway: int) -> dict[str, int]:
    """The territory and the catalog through the project's functions, then the bulk rows by COPY.
    The bulk tables' secondary indexes are dropped during the load and built again after it, from
    the statements PostgreSQL itself gives for them: the same schema, built once."""
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    definitions = {}
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        definition = load_file(path)
        q.publish_definition(engine, definition=definition, source=path.read_text(), published_by="bench")
        definitions[definition.id] = definition
    plan = make_plan(engine, {d: definitions[d] for d in DEFINITION_MIX})
    with engine.connect() as connection:
        plan.gto_leads = list(connection.execute(text("SELECT id FROM \"user\" WHERE role = 'gto_lead'")).scalars())
    indexes = secondary_indexes(engine)
    with engine.begin() as connection:
        for name, _ in indexes:
            connection.execute(text(f'DROP INDEX "{name}"'))
    started = time.perf_counter()
    with ExitStack() as stack:
        copies = Copies(url, stack)
        generate(copies, plan, Clock(q.now()), pathways=pathways, tasks_per_pathway=tasks_per_pathway)
        rows = dict(copies.rows)
    say(f"    COPY of {sum(rows.values()):,} rows: {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    with engine.connect() as connection:
        connection.execute(text("SET maintenance_work_mem = '512MB'"))
        for _, statement in indexes:
            connection.execute(text(statement))
        connection.commit()
    say(f"    {len(indexes)} secondary indexes built again: {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    say(f"    VACUUM ANALYZE: {time.perf_counter() - started:.1f}s")
    return rows


# --- Measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """A user as services.reading sees one."""

    id: str
    email: str
    role: str
    organisation_id: str
    basin_id: str | None


def viewers(engine: Engine) -> list[Viewer]:
    with engine.connect() as connection:
        rows = connection.execute(
            text('SELECT id, email, role, organisation_id, basin_id FROM "user" ORDER BY email')
        ).all()
    return [Viewer(*row) for row in rows]


class Statements:
    """Time spent in SQL per statement (its FROM clause onwards), per measure: where the time of
    a page goes; the slowest statement of each measure is kept with its parameters for EXPLAIN."""

    def __init__(self, engine: Engine) -> None:
        self.measure: str | None = None
        self.spent: dict[str, dict[str, list[float]]] = {}
        self.example: dict[tuple[str, str], tuple[str, Any]] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        if self.measure is None:
            return
        flat = " ".join(statement.split())
        cut = flat.find(" FROM ")
        key = (flat[:6] + " …" + flat[cut:] if cut > 0 else flat)[:110]
        self.spent.setdefault(self.measure, {}).setdefault(key, []).append(elapsed)
        slowest = self.example.get((self.measure, key))
        if slowest is None or elapsed > slowest[1][1]:
            self.example[(self.measure, key)] = (statement, (parameters, elapsed))

    def top(self, measure: str, calls: int, n: int = 3) -> list[tuple[str, float, float]]:
        """The statements of a measure taking most time: (statement, ms per call, max ms)."""
        entries = self.spent.get(measure, {})
        ranked = sorted(entries.items(), key=lambda kv: -sum(kv[1]))[:n]
        return [(key, sum(v) / calls * 1000, max(v) * 1000) for key, v in ranked]


@dataclass
class Measure:
    name: str
    calls: list[Callable[[], object]]  # one per parameter set, cycled through
    goal: float | None = GOAL_S  # seconds at p95; None: no goal in the issue
    repeat: int | None = None  # fewer calls than --repeat for a slow page
    head_only: bool = False  # reads tables the revision BEFORE does not have


GOALS: dict[str, float | None] = {}
"""The measures in their order, and the issue's goal for each (p95 in seconds; None: none)."""


def run_measure(measure: Measure, repeat: int, statements: Statements) -> list[float]:
    for call in measure.calls[: 3 if measure.repeat is None else 1]:  # warm-up
        call()
    repeat = min(repeat, measure.repeat or repeat)
    timings = []
    statements.measure = measure.name
    try:
        for i in range(repeat):
            call = measure.calls[i % len(measure.calls)]
            started = time.perf_counter()
            call()
            timings.append(time.perf_counter() - started)
    finally:
        statements.measure = None
    return timings


def build_measures(engine: Engine, client: TestClient, users: list[Viewer], plan_basins: list[str]) -> list[Measure]:
    leads = [u for u in users if u.role == "gto_lead"]
    caseworkers = [u for u in users if u.role == "caseworker"]
    designer = next(u for u in users if u.role == "designer")
    tokens: dict[str, dict[str, str]] = {}
    for user in leads + caseworkers + [designer]:
        response = client.post("/api/auth/token", json={"email": user.email, "password": PASSWORD})
        response.raise_for_status()
        tokens[user.id] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    definitions = list(DEFINITION_MIX)

    def get(path: str, user: Viewer, params: dict[str, Any]) -> Callable[[], object]:
        def call() -> object:
            response = client.get(path, params=params, headers=tokens[user.id])
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} {params} as {user.email}: {response.status_code} {response.text[:300]}")
            return response

        return call

    def fn(function: Callable[..., object], *args: Any, **kwargs: Any) -> Callable[[], object]:
        return lambda: function(*args, **kwargs)

    inbox_filters: list[dict[str, Any]] = [
        {},
        {"sla": "overdue"},
        {"bassin": plan_basins[1]},
        {},
        {"type": definitions[0]},
        {"page": "2"},
        {"sla": "due_soon", "bassin": plan_basins[2]},
    ]
    inbox_calls = [
        get("/taches", user, inbox_filters[i % len(inbox_filters)])
        for i, user in enumerate(caseworkers * len(inbox_filters))
    ]
    stats_params: list[dict[str, Any]] = [{}]
    stats_params += [{"basin": b} for b in plan_basins] + [{"definition": d} for d in definitions]
    stats_params += [{"basin": b, "definition": d} for b, d in zip(plan_basins, definitions, strict=False)]
    stats_user = caseworkers[0]
    lead_pages = [(lead, page) for page in (1, 1, 2) for lead in leads]
    now = q.now()
    return [
        Measure(
            "page GET /gto (GTO dashboard)",
            [get("/gto", lead, {} if page == 1 else {"page": page}) for lead, page in lead_pages],
        ),
        Measure("page GET /taches (a caseworker's inbox)", inbox_calls),
        Measure(
            "API GET /api/pathways?stuck=true (stuck list)",
            [get("/api/pathways", lead, {"stuck": "true", "page": page}) for lead, page in lead_pages],
        ),
        Measure(
            "API GET /api/stats/steps (statistics)", [get("/api/stats/steps", stats_user, p) for p in stats_params]
        ),
        Measure(
            "  reading.pathways(stuck=True)",
            [fn(reading.pathways, engine, lead, stuck=True, page=page) for lead, page in lead_pages],
        ),
        Measure(
            "  views.count_open_tasks(basin)", [fn(views.count_open_tasks, engine, basin_id=b) for b in plan_basins]
        ),
        Measure(
            "  views.step_counts(basin) (heat map)", [fn(views.step_counts, engine, basin_id=b) for b in plan_basins]
        ),
        Measure("  gto.trends(basin) (8 weeks)", [fn(gto.trends, engine, b, now) for b in plan_basins]),
        Measure(
            "  views.escalation_list(basin, size=1)",
            [fn(views.escalation_list, engine, basin_id=b, status="open", size=1) for b in plan_basins],
        ),
        Measure(
            "  reading.inbox(caseworker)",
            [fn(reading.inbox, engine, u, page=1 + i % 2) for i, u in enumerate(caseworkers * 2)],
        ),
        Measure(
            "  views.task_counts(organisation)",
            [fn(views.task_counts, engine, organisation_id=u.organisation_id) for u in caseworkers],
        ),
        Measure(
            "page GET /taches?statut=done (finished tasks; no goal)",
            [get("/taches", u, {"statut": "done"}) for u in caseworkers],
            goal=None,
        ),
        Measure(
            "page GET /definitions/{id}/evaluation (a basin's cohort)",
            [
                get(f"/definitions/{d}/evaluation", designer, {"bassin": b})
                for d, b in zip(definitions, plan_basins, strict=False)
            ],
            goal=0.500,
            repeat=10,
            head_only=True,
        ),
        Measure(
            "page GET /parcours (pathways followed; no goal in the issue)",
            [get("/parcours", u, {}) for u in caseworkers],
            goal=None,
            repeat=10,
        ),
    ]


def explain(engine: Engine, statements: Statements, measure: str) -> None:
    """EXPLAIN ANALYZE of the statement taking most of a measure's time, as it last ran slowest."""
    top = statements.top(measure, 1, n=1)
    if not top:
        return
    statement, (parameters, _) = statements.example[(measure, top[0][0])]
    with engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars().all()
    say(f"      EXPLAIN ANALYZE {' '.join(statement.split())[:300]}")
    for line in plan:
        say(f"        {line}")


def measure_all(
    engine: Engine, url: str, label: str, repeat: int, plan_basins: list[str], explain_slow: bool
) -> dict[str, list[float]]:
    # The pages measured only read: their service never reaches Temporal, so it has no client.
    service = PathwayService(None, engine, task_queue="bench-million")  # type: ignore[arg-type]
    app = create_app(engine, Settings(database_url=url), service=service)
    client = TestClient(app, base_url="http://bench")
    statements = Statements(engine)
    results: dict[str, list[float]] = {}
    try:
        for measure in build_measures(engine, client, viewers(engine), plan_basins):
            GOALS[measure.name] = measure.goal
            if measure.head_only and label == "before":
                continue
            timings = run_measure(measure, repeat, statements)
            results[measure.name] = timings
            goal = ("met" if pct(timings, 95) < measure.goal else "NOT MET") if measure.goal else "—"
            say(f"  {label:<7} {measure.name:<62} p50/p95 {p50_p95(timings)}  {goal}")
            for key, per_call, slowest in statements.top(measure.name, len(timings)):
                say(f"            {per_call:6.1f} ms per call (slowest run {slowest:6.1f})  {key}")
            if explain_slow and pct(timings, 95) >= (measure.goal or GOAL_S):
                explain(engine, statements, measure.name)
    finally:
        event.remove(engine, "before_cursor_execute", statements._before)
        event.remove(engine, "after_cursor_execute", statements._after)
        client.close()
    return results


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {t: int(connection.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in BULK_TABLES}


def prepare(engine: Engine, url: str, args: argparse.Namespace, reuse: bool) -> str:
    """A seeded database at revision BEFORE (or at head with --after-only); what was done."""
    if reuse:
        found = counts(engine)
        say(f"Reusing {args.database}: " + ", ".join(f"{t} {n:,}" for t, n in found.items()))
        current = revision_of(engine)
        if current != BEFORE and not args.after_only:
            say(f"Back to revision {BEFORE} (downgrade from {current}): {migrate(engine, BEFORE, down=True):.1f}s")
        return f"reused ({found['pathway']:,} pathways, {found['task']:,} tasks)"
    migrate(engine, BEFORE)
    say(f"Seeding at revision {BEFORE} …")
    started = time.perf_counter()
    rows = seed(engine, url, pathways=args.pathways, tasks_per_pathway=args.tasks_per_pathway)
    seconds = time.perf_counter() - started
    say(f"Seeded in {seconds:.1f}s: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    return f"seeded in {seconds:.0f}s ({rows['pathway']:,} pathways, {rows['task']:,} tasks, COPY)"


def main(args: argparse.Namespace) -> None:
    if args.database == "test":
        raise SystemExit("« test » est la base de la suite de tests : choisissez un autre nom.")
    url = database_url(args.database)
    head = head_revision()
    say(
        f"Parcours read model at scale — {args.pathways:,} pathways, about {args.pathways * args.tasks_per_pathway:,} "
        f"tasks, database {args.database}, revisions {BEFORE} → {head}, {os.cpu_count()} CPUs"
    )
    reuse = args.reuse and database_exists(args.database)
    if not reuse:
        recreate_database(args.database)
    engine = make_engine(url)
    try:
        seeding = prepare(engine, url, args, reuse)
        with engine.connect() as connection:
            emails = connection.execute(
                text("SELECT email FROM \"user\" WHERE role IN ('gto_lead', 'caseworker', 'designer')")
            ).scalars()
            for email in list(emails):
                set_password(engine, email=email, password=PASSWORD)
        basins = [b.id for b in views.list_basins(engine)]
        phases: list[tuple[str, dict[str, list[float]]]] = []
        if not args.after_only:
            say(f"Database size {database_size(engine)}. Measuring at revision {BEFORE} ({args.repeat} calls each) …")
            phases.append((f"before ({BEFORE})", measure_all(engine, url, "before", args.repeat, basins, args.explain)))
        upgrade_s = refresh_s = None
        if args.after_only or head != BEFORE:
            started = time.perf_counter()
            upgrade_to_head(engine)
            upgrade_s = time.perf_counter() - started
            say(f"upgrade_to_head → {head}: {upgrade_s:.1f}s. Database size {database_size(engine)}.")
            started = time.perf_counter()
            facts = evaluation_facts.refresh(engine, now=q.now())
            refresh_s = time.perf_counter() - started
            say(
                f"The evaluation's figures computed (evaluation_facts.refresh, hourly): {refresh_s:.1f}s, {facts:,} facts."
            )
            say(f"Measuring at revision {head} ({args.repeat} calls each) …")
            phases.append((f"after ({head})", measure_all(engine, url, "after", args.repeat, basins, args.explain)))
        say("")
        say(f"SUMMARY — {seeding}; {os.cpu_count()} CPUs; p50 / p95 over {args.repeat} calls each")
        say(f"{'measure':<64} " + "".join(f"{label:<24}" for label, _ in phases) + "goal (p95)")
        for measure, goal in GOALS.items():
            final = phases[-1][1][measure]
            verdict = (
                (f"< {goal * 1000:.0f} ms " + ("met" if pct(final, 95) < goal else "NOT MET")) if goal else "(no goal)"
            )
            say(
                f"{measure:<64} "
                + "".join(f"{p50_p95(results[measure]) if measure in results else '—':<24}" for _, results in phases)
                + verdict
            )
        final = phases[-1][1]
        figures.write(
            args.figures,
            [
                figures.Figure(
                    "million",
                    f"{args.pathways:,} pathways: {measure.strip()} p50 / p95",
                    " ".join(p50_p95(final[measure]).split()),
                    f"p95 < {goal * 1000:.0f} ms" if goal else "",
                    pct(final[measure], 95) < goal if goal else None,
                )
                for measure, goal in GOALS.items()
                if not measure.startswith("  ")  # the pages; their query functions stay in the log
            ]
            + (
                [
                    figures.Figure(
                        "million",
                        f"{args.pathways:,} pathways: evaluation figures computed again (hourly)",
                        f"{refresh_s:.0f} s",
                        "",
                        None,
                    )
                ]
                if refresh_s is not None
                else []
            ),
        )
        if upgrade_s is not None:
            say(f"upgrade_to_head to {head} on the seeded database (its new indexes built): {upgrade_s:.1f}s")
    finally:
        engine.dispose()
        if not args.keep:
            recreate_database(args.database, drop_only=True)
            say(f"Database {args.database} dropped (--keep keeps it).")


def database_size(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pathways", type=int, default=1_000_000)
    parser.add_argument("--tasks-per-pathway", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50, help="calls per measure")
    parser.add_argument("--database", default=DATABASE, help="the database this benchmark creates and drops")
    parser.add_argument("--keep", action="store_true", help="keep the database for a rerun with --reuse")
    parser.add_argument("--reuse", action="store_true", help="use the kept database instead of seeding again")
    parser.add_argument("--after-only", action="store_true", help="measure at head only (e.g. a rerun with --reuse)")
    parser.add_argument("--figures", type=Path, help="append the pages' figures to this file (bench/summary.py)")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE the slowest statement of a slow measure"
    )
    code = 0
    try:
        main(parser.parse_args())
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    os._exit(code)
