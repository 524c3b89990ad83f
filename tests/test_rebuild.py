"""`parcours rebuild`: running pathways come back from Temporal into an empty or damaged read model
as users saw them: each organisation's inbox and the GTO dashboard (stuck list, open escalations,
open tasks per step). A database holding data is refused without --force; nothing is deleted."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from admin_ui.access import stuck_since_cutoff
from services.rebuild import RebuildRefused, fetch, running_pathways
from services.rebuild import rebuild as rebuild_read_model
from services.rebuild_writes import Superseded, write_pathway
from store import models, views
from store import queries as q
from store.db import session_scope
from tests.conftest import MailSink, Parcours, eventually, make_parcours
from tests.flows import fast, flow, timed
from tests.test_processes import base_env, cli
from worker.temporal_server import DevServer

CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent)
BASIN = "annecien"
ORGANISATIONS = ("departement74", "ft_annecy")


# --- What users see -------------------------------------------------------------------------


def inboxes(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Each organisation's open tasks, by deadline, as the inbox lists them."""
    return {
        org: [
            (t.id, t.pathway_id, t.step_id, t.title, t.due_at, t.sla, t.escalation_level, t.generation, t.opened_at)
            for t in q.list_tasks(engine, organisation_id=org, status="open")
        ]
        for org in ORGANISATIONS
    }


def dashboard(engine: Engine) -> dict[str, Any]:
    """The basin's GTO dashboard: the queries admin_ui/pages/gto.py's dashboard runs."""
    stuck = views.pathway_list(engine, basin_id=BASIN, stuck_cutoff=stuck_since_cutoff(q.now()))
    tasks = views.open_tasks_by_pathway(engine, pathway_ids=[p.id for p in stuck.items])
    escalations = views.escalation_list(engine, basin_id=BASIN, status="open")
    return {
        "stuck": [
            (
                p.id,
                p.definition_id,
                p.definition_version,
                p.status,
                p.sla,
                p.current_steps,
                p.stuck_since,
                p.last_progress_at,
                [(t.id, t.organisation_id) for t in tasks[p.id]],
            )
            for p in stuck.items
        ],
        "escalations": [
            (e.id, e.pathway_id, e.task_id, e.step_id, e.level, e.to, e.status, e.opened_at) for e in escalations.items
        ],
        "open_tasks": views.count_open_tasks(engine, basin_id=BASIN),
        "step_counts": views.step_counts(engine, basin_id=BASIN),
    }


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def empty_read_model(client: Any, mail_sink: MailSink, tmp_path: Path, name: str) -> Engine:
    """A fresh SQLite read model, schema and territory made exactly as the fixtures make them."""
    return make_parcours(client, mail_sink, f"sqlite:///{tmp_path / name}").engine


# --- Pathways in different states -----------------------------------------------------------


async def start_pathways(parcours: Parcours) -> dict[str, str]:
    """A task open; a joint accompaniment (two open tasks); an open GTO escalation; a paused
    pathway whose deadline has passed during the pause. Returns them once stable."""
    parcours.publish(flow())
    parcours.publish(fast(definition_id="test_fast", level2="PT1H"))
    parcours.publish(timed(deadline="PT3S", reminder_before="PT1S", definition_id="test_paused"))
    camille = parcours.service.actor_for(CAMILLE)
    ids = {
        "open": await parcours.start("test_flow"),
        "joint": await parcours.start("test_flow"),
        "escalated": await parcours.start("test_fast"),
        "paused": await parcours.start("test_paused"),
    }
    await parcours.service.pause(pathway_id=ids["paused"], actor=camille)
    accueil = parcours.open_task(ids["joint"], "accueil")
    await parcours.service.complete_task(task_id=accueil.id, actor=camille, outcome="fait", data={"besoin": "emploi"})
    assert {t.step_id for t in parcours.open_tasks(ids["joint"])} == {"appui_referent", "appui_ft"}
    await eventually(lambda: q.list_escalations(parcours.engine, pathway_id=ids["escalated"]), what="GTO escalation")
    paused_task = parcours.open_task(ids["paused"], "tache")
    assert paused_task.sla == "on_time"
    due = paused_task.due_at if paused_task.due_at.tzinfo else paused_task.due_at.replace(tzinfo=UTC)
    await eventually(lambda: q.now() > due, what="the paused task's deadline to pass")
    await listed(parcours, ids)
    return ids


async def listed(parcours: Parcours, ids: dict[str, str]) -> None:
    """Wait until Temporal visibility lists every running pathway of this test."""

    async def check() -> bool:
        found = await running_pathways(parcours.client, task_queue=parcours.settings.task_queue)
        return set(ids.values()) <= set(found)

    # eventually() is typed for sync checks only; it awaits coroutines too.
    await eventually(check, what="visibility of the running pathways")  # type: ignore[arg-type]


def pathway_rows(engine: Engine, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = {}
    for pathway_id in ids:
        p = q.get_pathway(engine, pathway_id=pathway_id)
        assert p is not None, pathway_id
        rows[pathway_id] = (
            p.definition_id,
            p.definition_version,
            p.basin_id,
            p.referent_org,
            p.person_id,
            p.status,
            p.current_steps,
            p.sla,
            p.stuck_since,
            p.started_at,
            p.last_progress_at,
            p.revision,
        )
    return rows


def follow_up(engine: Engine, pathway_id: str) -> list[tuple[str, Any]]:
    history = views.pathway_history(engine, pathway_id=pathway_id)
    return sorted((m.organisation_id, m.until) for m in history["follow_up"])


# --- Tests ----------------------------------------------------------------------------------


async def test_rebuild_brings_back_inboxes_and_the_gto_dashboard(
    parcours: Parcours, mail_sink: MailSink, tmp_path: Path
) -> None:
    ids = await start_pathways(parcours)
    seen_inboxes, seen_dashboard = inboxes(parcours.engine), dashboard(parcours.engine)
    # What users see before the loss: the escalated pathway alone is stuck (the paused one's
    # deadline passed while its clock was stopped), five open tasks across two inboxes.
    assert [row[0] for row in seen_dashboard["stuck"]] == [ids["escalated"]]
    assert [row[1] for row in seen_dashboard["escalations"]] == [ids["escalated"]]
    assert sum(len(tasks) for tasks in seen_inboxes.values()) == 5

    engine = empty_read_model(parcours.client, mail_sink, tmp_path, "rebuilt.db")
    progress: list[tuple[int, int]] = []
    summary = await rebuild_read_model(
        parcours.client,
        engine,
        progress=lambda done, total: progress.append((done, total)),
        task_queue=parcours.settings.task_queue,
    )

    assert (summary.running, summary.pathways, summary.tasks, summary.escalations) == (4, 4, 5, 1)
    assert (summary.definitions, summary.persons, summary.failed, summary.stale_tasks) == (3, 4, [], [])
    assert progress == [(n, 4) for n in range(1, 5)]
    assert inboxes(engine) == seen_inboxes
    assert dashboard(engine) == seen_dashboard
    assert pathway_rows(engine, list(ids.values())) == pathway_rows(parcours.engine, list(ids.values()))
    for pathway_id in ids.values():
        assert follow_up(engine, pathway_id) == follow_up(parcours.engine, pathway_id)
        # The person is only an opaque id in Temporal: a placeholder, no personal data.
        person = views.get_person(engine, person_id=pathway_rows(engine, [pathway_id])[pathway_id][4])
        assert person is not None
        assert (person.first_name, person.last_name, person.nir, person.email) == (
            "Personne",
            "à ré-identifier",
            None,
            None,
        )
    # The definition versions in use, from the runs' snapshots.
    for definition_id in ("test_flow", "test_fast", "test_paused"):
        assert q.latest_definition(engine, definition_id=definition_id) == q.latest_definition(
            parcours.engine, definition_id=definition_id
        )
    assert {d.published_by for d in q.list_definitions(engine) if d.id.startswith("test_")} == {"rebuild"}


async def test_rebuild_refuses_a_database_with_data_and_force_completes_a_damaged_one(
    parcours: Parcours, mail_sink: MailSink, tmp_path: Path
) -> None:
    parcours.publish(flow())
    parcours.publish(fast(definition_id="test_fast", level2="PT1H"))
    ids = {"open": await parcours.start("test_flow"), "escalated": await parcours.start("test_fast")}
    await eventually(lambda: q.list_escalations(parcours.engine, pathway_id=ids["escalated"]), what="escalation")
    await listed(parcours, ids)
    engine = empty_read_model(parcours.client, mail_sink, tmp_path, "damaged.db")
    await rebuild_read_model(parcours.client, engine, task_queue=parcours.settings.task_queue)

    # Damage: tasks, escalations, persons and the restored definitions gone, pathway rows stale;
    # a task still open here that Temporal no longer has (e.g. a restored backup), elsewhere.
    ghost = f"{ids['open']}-99"
    with engine.begin() as connection:
        for statement in (
            "DELETE FROM task",
            "DELETE FROM escalation",
            "DELETE FROM person",
            "DELETE FROM definition WHERE published_by = 'rebuild'",
            "UPDATE pathway SET sla = NULL, stuck_since = NULL, current_steps = '[]', revision = 0",
        ):
            connection.execute(text(statement))
    with session_scope(engine) as session:
        session.add(
            models.Task(
                id=ghost,
                pathway_id=ids["open"],
                step_id="accueil",
                title="Accueil",
                definition_id="test_flow",
                basin_id="genevois",
                organisation_id="caf74",
                status="open",
            )
        )

    with pytest.raises(RebuildRefused, match="--force") as refused:
        await rebuild_read_model(parcours.client, engine, task_queue=parcours.settings.task_queue)
    assert "rien n'a été écrit" in refused.value.message
    assert (count(engine, models.Task), count(engine, models.Escalation), count(engine, models.Person)) == (1, 0, 0)
    assert q.latest_definition(engine, definition_id="test_flow") is None
    assert {p.sla for p in views.pathway_list(engine, basin_id=BASIN).items} == {None}

    summary = await rebuild_read_model(parcours.client, engine, force=True, task_queue=parcours.settings.task_queue)
    assert (summary.pathways, summary.tasks, summary.escalations, summary.persons) == (2, 2, 1, 2)
    assert summary.stale_tasks == [ghost]
    assert inboxes(engine) == inboxes(parcours.engine)
    assert dashboard(engine) == dashboard(parcours.engine)
    assert pathway_rows(engine, list(ids.values())) == pathway_rows(parcours.engine, list(ids.values()))
    # Never deletes: the ghost is reported, not removed.
    assert q.get_task(engine, task_id=ghost) is not None

    # A state older than what the workflow already committed is rolled back, not written.
    input, state = await fetch(parcours.client, ids["escalated"])
    older = state.model_copy(deep=True, update={"revision": state.revision - 1})
    for item in older.items.values():
        item.escalation_level = 0
    with pytest.raises(Superseded):
        write_pathway(engine, input, older, now=q.now())
    assert inboxes(engine) == inboxes(parcours.engine)


async def test_cli_rebuild(parcours: Parcours, mail_sink: MailSink, temporal_server: DevServer, tmp_path: Path) -> None:
    parcours.publish(flow())
    ids = {"open": await parcours.start("test_flow")}
    await listed(parcours, ids)
    empty_read_model(parcours.client, mail_sink, tmp_path, "cli.db").dispose()
    env = base_env(
        PARCOURS_TEMPORAL_ADDRESS=temporal_server.address,
        PARCOURS_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        PARCOURS_TASK_QUEUE=parcours.settings.task_queue,
    )

    # The worker runs in this test's event loop: run the CLI in a thread so it can answer queries.
    done = await asyncio.to_thread(cli, env, "rebuild", "--json")
    summary = json.loads(done.stdout)
    assert (summary["pathways"], summary["tasks"], summary["escalations"], summary["failed"]) == (1, 1, 0, [])
    assert "1/1" in done.stderr

    refused = await asyncio.to_thread(cli, env, "rebuild", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Erreur : la base de lecture contient déjà") and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr

    forced = await asyncio.to_thread(cli, env, "rebuild", "--force")
    assert "1 parcours en cours" in forced.stdout and "1 tâche(s) ouverte(s)" in forced.stdout
