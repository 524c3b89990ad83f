"""UI and API benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/ui.py [--completions 200] [--pathways 100000] [--tasks-per-pathway 5]

(a) latency of completing a task through the JSON API until the next task shows in the inbox
    (POST /api/tasks/{id}/complete, then GET /api/tasks until the next task is listed), p50/p95
    over --completions, on the embedded stack: Temporal dev server (SQLite file, WAL), a worker
    process, the app served by uvicorn over real HTTP, the read model on a SQLite file.
(b) the GTO dashboard page (/gto) and the stuck-pathway list (GET /api/pathways?stuck=true) with
    --pathways pathways and --pathways x --tasks-per-pathway tasks in the read model, p50/p95 on
    SQLite and on PostgreSQL (127.0.0.1:5432, a throw-away database), in-process ASGI requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from admin_ui.app import create_app  # noqa: E402
from admin_ui.security import set_password  # noqa: E402
from bench.engine import Children, CountingSink, pct, say  # noqa: E402
from definitions.loader import parse_text  # noqa: E402
from definitions.territory import DEMO_TERRITORY, load_territory  # noqa: E402
from parcours.settings import Settings  # noqa: E402
from services.pathways import PathwayService  # noqa: E402
from store import models  # noqa: E402
from store import queries as q  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.migrations import upgrade_to_head  # noqa: E402
from worker.mail_capture import SmtpController  # noqa: E402
from worker.temporal_server import DevServer, free_port  # noqa: E402

PASSWORD = "mot-de-passe-bench-2026"
CASEWORKER, GTO_LEAD = "camille.martin@example.org", "lea.dupont@example.org"
PG_ADMIN_URL = os.environ.get("PARCOURS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHAIN = (
    """
id: bench_chain
title: Bench – chaîne de tâches
status: active
basins: [all]
start: t1
steps:
"""
    + "".join(
        f"  - {{kind: task, id: t{i}, title: Tâche {i}, role: referent, deadline: 10 working days, outcomes: [{{id: fait, label: Fait, next: {'t' + str(i + 1) if i < 5 else 'fin'}}}]}}\n"
        for i in range(1, 6)
    )
    + "  - {kind: end, id: fin, title: Fin, exit_reason: emploi_durable}\n"
)


def p50_p95(values: list[float]) -> str:
    return f"p50 {pct(values, 50) * 1000:.1f} ms  p95 {pct(values, 95) * 1000:.1f} ms  (n={len(values)})"


def prepare_read_model(engine: Engine) -> None:
    upgrade_to_head(engine)
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    for email in (CASEWORKER, GTO_LEAD):
        set_password(engine, email=email, password=PASSWORD)


async def token(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post("/api/auth/token", json={"email": email, "password": PASSWORD})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# --- (a) ----------------------------------------------------------------------------------


async def bench_completion(args: argparse.Namespace, tmp: Path) -> list[float]:
    children = Children(tmp)
    sink = CountingSink()
    smtp_port = free_port()
    children.smtp = SmtpController(sink, hostname="127.0.0.1", port=smtp_port)
    children.smtp.start()
    children.server = DevServer(port=free_port(), db_file=tmp / "temporal.db", log_file=tmp / "temporal.log")
    client = await children.server.start()
    database_url = f"sqlite:///{tmp / 'ui-a.db'}"
    engine = make_engine(database_url)
    prepare_read_model(engine)
    definition = parse_text(CHAIN, source="bench")
    q.publish_definition(engine, definition=definition, source=CHAIN, published_by="bench")
    queue = f"bench-ui-{uuid.uuid4().hex[:6]}"
    children.start_worker(
        "ui-worker", kind="parcours", task_queue=queue, database_url=database_url, smtp_port=smtp_port
    )
    settings = Settings(database_url=database_url, task_queue=queue, smtp_host="127.0.0.1", smtp_port=smtp_port)
    service = PathwayService(client, engine, task_queue=queue)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine, settings, service=service),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    latencies: list[float] = []
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        actor = service.actor_for(CASEWORKER)
        pathways = -(-args.completions // 4) + 1
        for _ in range(pathways):
            await service.start_pathway(
                definition_id="bench_chain",
                basin_id="annecien",
                referent_org="departement74",
                person={"first_name": "Alex", "last_name": "Bench", "consent": True},
                actor=actor,
            )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            headers = await token(http, CASEWORKER)
            inbox = (
                await http.get(
                    "/api/tasks", params={"scope": "organisation", "status": "open", "size": 200}, headers=headers
                )
            ).json()
            open_tasks = [t for t in inbox["items"]]
            say(
                f"(a) {len(open_tasks)} pathways waiting on their first task; completing {args.completions} tasks one after the other …"
            )
            count = 0
            while count < args.completions and open_tasks:
                task = open_tasks.pop(0)
                started = time.perf_counter()
                response = await http.post(
                    f"/api/tasks/{task['id']}/complete", json={"outcome": "fait", "data": {}}, headers=headers
                )
                response.raise_for_status()
                while True:  # until the next task of that pathway is in the inbox
                    listed = (
                        await http.get(
                            "/api/tasks",
                            params={"scope": "organisation", "status": "open", "size": 200},
                            headers=headers,
                        )
                    ).json()["items"]
                    following = [t for t in listed if t["pathway_id"] == task["pathway_id"] and t["id"] != task["id"]]
                    if following or task["step_id"] == "t5":
                        break
                latencies.append(time.perf_counter() - started)
                open_tasks.extend(following)
                count += 1
    finally:
        server.should_exit = True
        await serving
        children.stop_all()
    return latencies


# --- (b) ----------------------------------------------------------------------------------


def seed(engine: Engine, *, pathways: int, tasks_per_pathway: int) -> None:
    """Bulk rows shaped like real use: 4 basins, the catalog's definitions, 70 % active."""
    rng = random.Random(42)
    now = q.now()
    basins = ["annecien", "genevois", "chablais", "arve_mont_blanc"]
    definitions = ["rsa_socio_pro", "jeune_neet_mission_locale", "deld_immersion", "boe_cap_emploi"]
    slas = ["on_time"] * 70 + ["due_soon"] * 10 + ["overdue"] * 12 + ["escalated"] * 8
    batch_p: list[dict[str, Any]] = []
    batch_t: list[dict[str, Any]] = []
    batch_e: list[dict[str, Any]] = []

    def flush(force: bool = False) -> None:
        if force or len(batch_t) >= 20_000:
            with engine.begin() as connection:
                for table, rows in ((models.Pathway, batch_p), (models.Task, batch_t), (models.Escalation, batch_e)):
                    if rows:
                        connection.execute(SQLModel.metadata.tables[table.__tablename__].insert(), rows)  # type: ignore[attr-defined]
            batch_p.clear(), batch_t.clear(), batch_e.clear()

    for n in range(pathways):
        pid = f"P-B{n:09d}"
        basin, definition = basins[n % 4], definitions[rng.randrange(4)]
        active = rng.random() < 0.7
        started = now - timedelta(days=rng.randrange(1, 400))
        sla = rng.choice(slas) if active else None
        progress = started + timedelta(days=rng.randrange(0, 30))
        batch_p.append(
            {
                "id": pid,
                "definition_id": definition,
                "definition_version": 1,
                "basin_id": basin,
                "referent_org": "departement74",
                "person_id": f"pers-b{n}",
                "status": "active" if active else "closed",
                "current_steps": [f"s{tasks_per_pathway}"] if active else [],
                "sla": sla,
                "stuck_since": progress if sla in ("overdue", "escalated") else None,
                "started_at": started,
                "updated_at": progress,
                "last_progress_at": progress,
                "closed_at": None if active else progress,
                "exit_reason": None if active else "emploi_durable",
                "revision": tasks_per_pathway,
            }
        )
        for i in range(1, tasks_per_pathway + 1):
            is_open = active and i == tasks_per_pathway
            batch_t.append(
                {
                    "id": f"{pid}-{i}",
                    "pathway_id": pid,
                    "step_id": f"s{i}",
                    "title": f"Étape {i}",
                    "definition_id": definition,
                    "basin_id": basin,
                    "organisation_id": "departement74",
                    "status": "open" if is_open else "done",
                    "sla": sla if is_open else None,
                    "due_at": progress + timedelta(days=14),
                    "opened_at": progress,
                    "closed_at": None if is_open else progress,
                    "generation": 0,
                    "escalation_level": 1 if is_open and sla == "escalated" else 0,
                    "outcome": None if is_open else "fait",
                    "submission_id": None,
                }
            )
        if active and sla == "escalated":
            batch_e.append(
                {
                    "id": f"{pid}-{tasks_per_pathway}-g0-n1",
                    "pathway_id": pid,
                    "task_id": f"{pid}-{tasks_per_pathway}",
                    "step_id": f"s{tasks_per_pathway}",
                    "basin_id": basin,
                    "level": 1,
                    "to": "gto",
                    "status": "open",
                    "opened_at": progress + timedelta(days=15),
                    "decided_at": None,
                    "decided_by": None,
                    "action": None,
                    "note_id": None,
                }
            )
        flush()
    flush(force=True)
    # The steady state autovacuum (PostgreSQL) or a periodic ANALYZE (SQLite) would reach: fresh
    # statistics, and a visibility map that allows index-only scans.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


async def time_requests(
    app: Any, headers: dict[str, str], path: str, params: dict[str, str], repeat: int
) -> list[float]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        for _ in range(3):  # warm-up
            (await http.get(path, params=params, headers=headers)).raise_for_status()
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            (await http.get(path, params=params, headers=headers)).raise_for_status()
            timings.append(time.perf_counter() - started)
    return timings


async def bench_read_model(args: argparse.Namespace, label: str, url: str) -> dict[str, list[float]]:
    engine = make_engine(url)
    prepare_read_model(engine)
    started = time.perf_counter()
    seed(engine, pathways=args.pathways, tasks_per_pathway=args.tasks_per_pathway)
    say(
        f"(b) {label}: seeded {args.pathways:,} pathways and {args.pathways * args.tasks_per_pathway:,} tasks in {time.perf_counter() - started:.1f}s"
    )
    app = create_app(engine, Settings(database_url=url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        headers = await token(http, GTO_LEAD)
    results = {
        "GTO dashboard /gto": await time_requests(app, headers, "/gto", {}, args.repeat),
        "stuck list /api/pathways?stuck=true": await time_requests(
            app, headers, "/api/pathways", {"stuck": "true", "basin": "annecien"}, args.repeat
        ),
    }
    for name, values in results.items():
        say(f"    {label:<10} {name:<38} {p50_p95(values)}")
    engine.dispose()
    return results


async def main(args: argparse.Namespace) -> None:
    say(
        f"Parcours UI benchmark — completions={args.completions}, pathways={args.pathways:,}, tasks={args.pathways * args.tasks_per_pathway:,}"
    )
    with tempfile.TemporaryDirectory(prefix="parcours-bench-ui-") as folder:
        tmp = Path(folder)
        summary: list[tuple[str, str]] = []
        if args.completions:
            latencies = await bench_completion(args, tmp)
            say(f"(a) complete → next task in the inbox: {p50_p95(latencies)}")
            summary.append(("(a) API completion → next task in inbox", f"{p50_p95(latencies)}   goal p95 < 250 ms"))
        if args.pathways:
            sqlite = await bench_read_model(args, "SQLite", f"sqlite:///{tmp / 'ui-b.db'}")
            name = f"parcours_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                postgres = await bench_read_model(args, "PostgreSQL", PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for label, results in (("SQLite", sqlite), ("PostgreSQL", postgres)):
                for page, values in results.items():
                    summary.append((f"(b) {label} {page}", f"{p50_p95(values)}   goal p95 < 100 ms"))
        say("\nSUMMARY")
        for name, figure in summary:
            say(f"{name:<58} {figure}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=200)
    parser.add_argument("--pathways", type=int, default=100_000)
    parser.add_argument("--tasks-per-pathway", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=30)
    code = 0
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    os._exit(code)
