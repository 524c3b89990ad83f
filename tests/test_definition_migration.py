"""Moving running pathways to a newer version of their definition: the plan (pure), the workflow
update, the service and CLI (dry run, bad input, retries) and the UI flow (designer prepares,
administrator confirms). Pathways sit on each kind of step: a task, a parallel group's branches,
a wait, a module task."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError

from definitions.loader import parse_text
from definitions.migration import MigrationInputError, plan_migration
from services import migration as mig
from services.errors import ServiceError
from store import definition_migrations as dm
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import Parcours, Web, csrf_of, eventually
from tests.test_processes import base_env, cli
from worker.temporal_server import DevServer
from workflows.contract import SYSTEM
from workflows.model import MigrateDefinition
from workflows.pathway import PathwayWorkflow

CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent)
JULIEN = "julien.roux@example.org"  # caseworker, ft_annecy
MARC = "marc.girard@example.org"  # designer
ADMIN = "admin@example.org"

V1 = """
id: test_migr
title: Parcours à migrer
status: active
basins: [all]
start: accueil
steps:
  - kind: task
    id: accueil
    title: Accueil
    role: referent
    deadline: PT1H
    outcomes:
      - {id: conjoint, label: Accompagnement conjoint, next: conjoint}
      - {id: attendre, label: Attendre, next: attente}
      - {id: fini, label: Terminé, next: fin}
  - kind: parallel
    id: conjoint
    title: Accompagnement conjoint
    branches:
      - {kind: task, id: br_ref, title: Appui référent, role: referent, deadline: PT1H, outcomes: [{id: fait, label: Fait}]}
      - {kind: task, id: br_ft, title: Appui France Travail, role: "partner:france_travail", deadline: PT1H, outcomes: [{id: fait, label: Fait}]}
    next: bilan
  - {kind: wait, id: attente, title: Attente, duration: PT1H, next: bilan}
  - kind: task
    id: bilan
    title: Bilan
    role: referent
    outcomes: [{id: fait, label: Fait, next: fin}]
  - {kind: end, id: fin, title: Fin, exit_reason: emploi_durable}
modules:
  - id: mob
    title: Mobilité
    steps:
      - {kind: task, id: mob_diag, title: Diagnostic mobilité, role: referent, deadline: PT1H, outcomes: [{id: fait, label: Fait}]}
      - {kind: task, id: mob_sol, title: Solution mobilité, role: referent, outcomes: [{id: fait, label: Fait}]}
"""

# v2: every step the pathways sit on renamed; after the first task, a new step before the bilan.
V2_RENAMED = (
    V1.replace("id: accueil", "id: premier_accueil")
    .replace("start: accueil", "start: premier_accueil")
    .replace("title: Accueil\n", "title: Premier accueil\n")
    .replace("{id: fini, label: Terminé, next: fin}", "{id: fini, label: Terminé, next: entretien}")
    .replace("id: conjoint\n", "id: duo\n")
    .replace("next: conjoint}", "next: duo}")
    .replace("id: br_ref", "id: duo_ref")
    .replace("id: br_ft", "id: duo_ft")
    .replace("id: attente,", "id: delai,")
    .replace("next: attente}", "next: delai}")
    .replace("id: mob_diag", "id: mob_diagnostic")
    .replace(
        "  - {kind: end, id: fin,",
        "  - kind: task\n    id: entretien\n    title: Entretien de sortie\n    role: referent\n"
        "    outcomes: [{id: fait, label: Fait, next: fin}]\n  - {kind: end, id: fin,",
    )
)
RENAMES = {
    "accueil": "premier_accueil",
    "conjoint": "duo",
    "br_ref": "duo_ref",
    "br_ft": "duo_ft",
    "attente": "delai",
    "mob_diag": "mob_diagnostic",
}
# v2: a new first step inserted before `accueil`, which keeps its id.
V2_INSERTED = V1.replace("start: accueil", "start: prealable").replace(
    "steps:\n  - kind: task\n    id: accueil",
    "steps:\n  - kind: task\n    id: prealable\n    title: Préalable\n    role: referent\n"
    "    outcomes: [{id: fait, label: Fait, next: accueil}]\n  - kind: task\n    id: accueil",
)
# v2: `accueil` removed (its work now done by a new step `orientation`): its open task would be
# dropped without a map.
V2_REMOVED = (
    V1.replace("id: accueil", "id: orientation")
    .replace("start: accueil", "start: orientation")
    .replace("title: Accueil\n", "title: Orientation\n")
)


def definition(text: str, version: int) -> Any:
    return parse_text(text, source="test.yaml").model_copy(update={"version": version})


def publish(parcours: Parcours, text: str) -> int:
    version, created = q.publish_definition(
        parcours.engine, definition=parse_text(text, source="t.yaml"), source=text, published_by="test"
    )
    assert created
    return version


async def state_of(parcours: Parcours, pathway_id: str) -> Any:
    return await parcours.client.get_workflow_handle(pathway_id).query(PathwayWorkflow.state_view)


def emails_sent(parcours: Parcours) -> bool:
    """The relay marks e-mails sent on its own time: wait for it before comparing snapshots."""
    with session_scope(parcours.engine) as session:
        return all(n.status == "sent" for n in session.exec(select(models.Notification)))


# The outbox relay delivers e-mails whenever it likes: its own columns are not the migration's.
RELAY_COLUMNS = {"status", "attempts", "last_error", "sent_at", "next_attempt_at", "claimed_until", "claim_token"}


def snapshot(parcours: Parcours) -> dict[str, Any]:
    """Everything the read model holds about pathways (to show that nothing changed), but the
    delivery state of e-mails, which the relay changes concurrently."""
    with session_scope(parcours.engine) as session:
        return {
            model.__name__: sorted(
                (
                    r.model_dump(mode="json", exclude=RELAY_COLUMNS if model is models.Notification else None)
                    for r in session.exec(select(model))
                ),
                key=lambda r: str(r.get("id") or r.get("key")),
            )
            for model in (
                models.Pathway,
                models.Task,
                models.PathwayStep,
                models.AuditEvent,
                models.Notification,
                models.DefinitionMigration,
            )
        }


def audit(parcours: Parcours, action: str, pathway_id: str | None = None) -> list[models.AuditEvent]:
    with session_scope(parcours.engine) as session:
        query = select(models.AuditEvent).where(models.AuditEvent.action == action)
        if pathway_id:
            query = query.where(models.AuditEvent.pathway_id == pathway_id)
        return list(session.exec(query))


async def complete(parcours: Parcours, task_id: str, outcome: str, by: str = CAMILLE) -> None:
    await parcours.service.complete_task(
        task_id=task_id, actor=parcours.service.actor_for(by), outcome=outcome, data={}
    )


async def on_version(parcours: Parcours, pathway_id: str, version: int) -> bool:
    """The read model and the running workflow (after continue-as-new) both on `version`."""
    pathway = parcours.pathway(pathway_id)
    if pathway.definition_version != version:
        return False
    description = await parcours.client.get_workflow_handle(pathway_id).describe()
    return description.run_id != description.raw_description.workflow_execution_info.first_run_id


# --- The plan (pure) ----------------------------------------------------------------------------


def test_plan_lands_each_kind_or_says_why() -> None:
    old, new = definition(V1, 1), definition(V2_RENAMED, 2)
    items = [
        ("accueil", "task", "main"),
        ("conjoint", "group", "main"),
        ("br_ref", "task", "main"),
        ("br_ft", "task", "main"),
        ("attente", "wait", "main"),
        ("mob_diag", "task", "module:mob"),
    ]
    plan = plan_migration(old, new, RENAMES, items)
    assert plan.ok, plan.refusals
    assert [(lg.step_id, lg.to_step, lg.group) for lg in plan.landings] == [
        ("accueil", "premier_accueil", None),
        ("conjoint", "duo", None),
        ("br_ref", "duo_ref", "duo"),
        ("br_ft", "duo_ft", "duo"),
        ("attente", "delai", None),
        ("mob_diag", "mob_diagnostic", None),
    ]
    assert plan.results_map["accueil"] == "premier_accueil"  # decisions branch on earlier results

    # Without a map every open item would be dropped: each is refused, saying what and how to fix.
    refused = plan_migration(old, new, {}, items)
    assert not refused.ok and len(refused.refusals) == 6
    assert "n'existe plus dans la version 2" in refused.refusals[0]
    assert "une tâche ouverte" in refused.refusals[0] and "accueil=" in refused.refusals[0]
    assert "une attente en cours" in refused.refusals[4]

    # A landing of the wrong kind is refused.
    wrong = {
        "accueil": "delai",  # task -> wait
        "attente": "bilan",  # wait -> task
        "conjoint": "bilan",  # group -> task
        "mob_diag": "bilan",  # module task -> main-flow task
    }
    plan = plan_migration(old, new, {**RENAMES, **wrong}, items)
    reasons = " ".join(plan.refusals)
    assert "une tâche ne peut arriver que sur une tâche" in reasons
    assert "une attente ne peut arriver que sur une étape d'attente" in reasons
    assert "un accompagnement conjoint ne peut arriver que sur un accompagnement conjoint" in reasons
    assert "une étape du module « mob » doit arriver sur une étape de ce même module" in reasons
    # A main-flow task on a branch, a branch outside its group.
    plan = plan_migration(old, new, {**RENAMES, "accueil": "duo_ref", "br_ft": "bilan"}, items)
    reasons = " ".join(plan.refusals)
    assert "ni branche, ni module" in reasons and "une branche doit arriver sur une branche de « duo »" in reasons


def test_plan_refuses_bad_requests_before_looking_at_pathways() -> None:
    old, new = definition(V1, 1), definition(V2_RENAMED, 2)
    for step_map, message in (
        ({"nulle_part": "bilan"}, "l'étape « nulle_part » n'existe pas dans la version 1"),
        ({"accueil": "inconnue"}, "l'étape cible « inconnue » n'existe pas dans la version 2"),
    ):
        with pytest.raises(MigrationInputError, match=re.escape(message)):
            plan_migration(old, new, step_map, [])
    with pytest.raises(MigrationInputError, match="déjà sur la version 1"):
        plan_migration(old, definition(V1, 1), {}, [])
    with pytest.raises(MigrationInputError, match="autre parcours"):
        plan_migration(old, definition(V1.replace("id: test_migr", "id: autre"), 2), {}, [])
    with pytest.raises(ServiceError, match="mal formée « accueil »"):
        mig.parse_step_map(["accueil"])
    assert mig.parse_step_map(["accueil=premier_accueil", " br_ft = duo_ft "]) == {
        "accueil": "premier_accueil",
        "br_ft": "duo_ft",
    }


# --- Each kind of step, moved, then run on the new version ----------------------------------------


async def test_renamed_steps_land_with_their_clocks_and_go_on_with_the_new_version(parcours: Parcours) -> None:
    parcours.publish(V1)
    on_task = await parcours.start("test_migr")
    on_group = await parcours.start("test_migr")
    await complete(parcours, parcours.open_task(on_group, "accueil").id, "conjoint")
    on_wait = await parcours.start("test_migr")
    await complete(parcours, parcours.open_task(on_wait, "accueil").id, "attendre")
    on_module = await parcours.start("test_migr")
    await parcours.service.add_module(pathway_id=on_module, actor=parcours.service.actor_for(CAMILLE), module_id="mob")
    assert publish(parcours, V2_RENAMED) == 2

    before = {p: {t.id: t for t in parcours.open_tasks(p)} for p in (on_task, on_group, on_module)}
    wait_before = (await state_of(parcours, on_wait)).items
    report = await mig.migrate(parcours.service, definition_id="test_migr", to_version=2, step_map=RENAMES)
    assert report.counts["moved"] == 4 and report.counts["refused"] == 0, report.as_dict()

    for pathway_id in (on_task, on_group, on_wait, on_module):
        await eventually(lambda p=pathway_id: on_version(parcours, p, 2), what=f"{pathway_id} on v2 (new run)")
        assert [e.detail for e in audit(parcours, "definition_migrated", pathway_id)] == [
            {"from": "test_migr v1", "to": "test_migr v2"}
        ]
    # Open tasks keep their id, deadline, organisation and clock generation, under the new step.
    for pathway_id, old_step in ((on_task, "accueil"), (on_module, "mob_diag")):
        (old_task,) = [t for t in before[pathway_id].values() if t.step_id == old_step]
        task = q.get_task(parcours.engine, task_id=old_task.id)
        assert task is not None and task.status == "open" and task.step_id == RENAMES[old_step]
        assert (task.due_at, task.organisation_id, task.generation) == (
            old_task.due_at,
            old_task.organisation_id,
            old_task.generation,
        )
    branches = {t.step_id: t for t in parcours.open_tasks(on_group)}
    assert set(branches) == {"duo_ref", "duo_ft"}
    assert {t.id for t in branches.values()} == set(before[on_group])
    assert branches["duo_ft"].organisation_id == "ft_annecy"
    (wait,) = [i for i in (await state_of(parcours, on_wait)).items.values()]
    assert wait.step_id == "delai" and wait.due_at == next(iter(wait_before.values())).due_at
    assert parcours.pathway(on_wait).current_steps == ["delai"]

    # Each goes on with the new version's next steps.
    await complete(parcours, parcours.open_task(on_task, "premier_accueil").id, "fini")
    parcours.open_task(on_task, "entretien")  # a step only v2 has
    await complete(parcours, branches["duo_ref"].id, "fait")
    await complete(parcours, branches["duo_ft"].id, "fait", by=JULIEN)
    parcours.open_task(on_group, "bilan")
    await complete(parcours, parcours.open_task(on_module, "mob_diagnostic").id, "fait")
    parcours.open_task(on_module, "mob_sol")  # the module's progress followed


async def test_a_removed_step_is_refused_without_a_map_and_the_pathway_stays_on_its_version(
    parcours: Parcours,
) -> None:
    parcours.publish(V1)
    pathway_id = await parcours.start("test_migr")
    publish(parcours, V2_REMOVED)
    state = await state_of(parcours, pathway_id)
    report = await mig.migrate(parcours.service, definition_id="test_migr", to_version=2, step_map={})
    (move,) = report.pathways
    assert move.status == "refused" and report.counts["moved"] == 0
    assert "« accueil »" in move.reasons[0] and "n'existe plus dans la version 2" in move.reasons[0]
    assert parcours.pathway(pathway_id).definition_version == 1
    assert (await state_of(parcours, pathway_id)) == state
    assert not audit(parcours, "definition_migrated", pathway_id)

    # The workflow's validator refuses it too, on its own (e.g. a caller skipping the plan).
    handle = parcours.client.get_workflow_handle(pathway_id)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            PathwayWorkflow.migrate_definition, MigrateDefinition(definition=definition(V2_REMOVED, 2), actor=SYSTEM)
        )
    assert "n'existe plus dans la version 2" in str(refused.value.cause)
    # ... and a caseworker may not move a pathway at all.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            PathwayWorkflow.migrate_definition,
            MigrateDefinition(
                definition=definition(V2_REMOVED, 2),
                step_map={"accueil": "orientation"},
                actor=parcours.service.actor_for(CAMILLE),
            ),
        )
    assert "Seul un administrateur" in str(refused.value.cause)
    # With a map, the open task moves to `orientation` and keeps its id.
    task = parcours.open_task(pathway_id, "accueil")
    report = await mig.migrate(
        parcours.service, definition_id="test_migr", to_version=2, step_map={"accueil": "orientation"}
    )
    assert report.counts["moved"] == 1
    await eventually(lambda: on_version(parcours, pathway_id, 2), what="on v2")
    assert parcours.open_task(pathway_id, "orientation").id == task.id


async def test_a_step_inserted_before_the_current_one_leaves_the_pathway_where_it_is(parcours: Parcours) -> None:
    parcours.publish(V1)
    pathway_id = await parcours.start("test_migr")
    task = parcours.open_task(pathway_id, "accueil")
    publish(parcours, V2_INSERTED)
    report = await mig.migrate(parcours.service, definition_id="test_migr", to_version=2, step_map={})
    assert report.counts["moved"] == 1
    await eventually(lambda: on_version(parcours, pathway_id, 2), what="on v2")
    assert [t.id for t in parcours.open_tasks(pathway_id)] == [task.id]
    assert parcours.open_task(pathway_id, "accueil").due_at == task.due_at
    assert not [
        s for s in q.pathway_detail(parcours.engine, pathway_id=pathway_id)["steps"] if s["step_id"] == "prealable"
    ]
    await complete(parcours, task.id, "attendre")
    assert parcours.pathway(pathway_id).current_steps == ["attente"]


# --- Dry run, bad input, retries ----------------------------------------------------------------------


async def test_the_dry_run_and_bad_input_change_nothing(parcours: Parcours) -> None:
    parcours.publish(V1)
    pathway_id = await parcours.start("test_migr")
    publish(parcours, V2_RENAMED)
    await eventually(lambda: emails_sent(parcours), what="the outbox relay has sent the e-mails")
    before, state = snapshot(parcours), await state_of(parcours, pathway_id)

    report = await mig.migrate(
        parcours.service, definition_id="test_migr", to_version=2, step_map=RENAMES, dry_run=True
    )
    (move,) = report.pathways
    assert move.status == "ready" and move.where == ["accueil"]
    assert move.landings == [{"from": "accueil", "to": "premier_accueil", "kind": "task"}]

    for kwargs, message in (
        ({"definition_id": "inconnue", "to_version": 2}, "Définition inconnue : « inconnue »"),
        ({"to_version": 7}, "Version 7 de « test_migr » introuvable (versions publiées : 1, 2)"),
        ({"to_version": 2, "step_map": {"nulle_part": "bilan"}}, "l'étape « nulle_part » n'existe pas"),
        ({"to_version": 2, "step_map": {"accueil": "inconnue"}}, "l'étape cible « inconnue » n'existe pas"),
        ({"to_version": 2, "basin_id": "atlantide"}, "Bassin inconnu : « atlantide »"),
    ):
        arguments: dict[str, Any] = {"definition_id": "test_migr", "step_map": {}, **kwargs}
        with pytest.raises(ServiceError, match=re.escape(message)):
            await mig.migrate(parcours.service, **arguments)
    with pytest.raises(ServiceError, match="Seul un administrateur"):
        await mig.migrate(
            parcours.service,
            definition_id="test_migr",
            to_version=2,
            step_map=RENAMES,
            actor=parcours.service.actor_for(MARC),
        )
    assert snapshot(parcours) == before
    assert (await state_of(parcours, pathway_id)) == state


async def test_a_retried_migration_applies_once(parcours: Parcours) -> None:
    parcours.publish(V1)
    pathway_id = await parcours.start("test_migr")
    publish(parcours, V2_RENAMED)
    handle = parcours.client.get_workflow_handle(pathway_id)
    command = MigrateDefinition(definition=definition(V2_RENAMED, 2), step_map=RENAMES, actor=SYSTEM)
    update_id = mig.update_id("test_migr", 2, pathway_id)
    first = await handle.execute_update(PathwayWorkflow.migrate_definition, command, id=update_id)
    # The same request again (a retry after a lost answer): the same update (same run), or after
    # continue-as-new refused as already done; never a second move.
    try:
        again = await handle.execute_update(PathwayWorkflow.migrate_definition, command, id=update_id)
        assert again == first
    except WorkflowUpdateFailedError as error:
        assert "déjà sur la version 2" in str(error.cause)
    await eventually(lambda: on_version(parcours, pathway_id, 2), what="on v2")
    # After continue-as-new, the whole operation retried: reported as moved, applied once.
    report = await mig.migrate(parcours.service, definition_id="test_migr", to_version=2, step_map=RENAMES)
    assert report.counts["total"] == 0
    pathway = q.get_pathway(parcours.engine, pathway_id=pathway_id)
    assert pathway is not None
    move = mig.PathwayMove(pathway_id, "annecien", 1, "ready")
    retried = mig.MigrationReport("test_migr", 2, RENAMES, None, [move])
    await mig.apply(parcours.service, retried, actor=SYSTEM)
    assert move.status == "moved", move.reasons
    assert len(audit(parcours, "definition_migrated", pathway_id)) == 1
    assert parcours.open_task(pathway_id, "premier_accueil")


async def test_the_cli_refuses_bad_input_simulates_then_moves(
    parcours: Parcours, temporal_server: DevServer, tmp_path: Path
) -> None:
    parcours.publish(V1)
    pathway_id = await parcours.start("test_migr")
    publish(parcours, V2_RENAMED)
    env = base_env(
        PARCOURS_DATABASE_URL=parcours.settings.database_url or "",
        PARCOURS_TEMPORAL_ADDRESS=temporal_server.address,
        PARCOURS_DATA_DIR=str(tmp_path),
    )
    before = snapshot(parcours)

    async def migrate(*args: str) -> Any:  # in a thread: the worker shares this event loop
        return await asyncio.to_thread(cli, env, "pathways", "migrate", *args, check=False)

    for args, message in (
        (["--definition", "inconnue", "--to-version", "2"], "Définition inconnue : « inconnue »"),
        (["--definition", "test_migr", "--to-version", "9"], "Version 9 de « test_migr » introuvable"),
        (["--definition", "test_migr", "--to-version", "2", "--map", "accueil"], "Correspondance mal formée"),
        (
            ["--definition", "test_migr", "--to-version", "2", "--map", "nulle_part=bilan"],
            "« nulle_part » n'existe pas",
        ),
        (["--definition", "test_migr", "--to-version", "2", "--map", "accueil=inconnue"], "« inconnue » n'existe pas"),
    ):
        result = await migrate(*args)
        assert result.returncode == 1 and result.stderr.startswith("Erreur : ") and message in result.stderr, result
    maps = [f"--map={k}={v}" for k, v in RENAMES.items()]
    dry = await migrate("--definition", "test_migr", "--to-version", "2", *maps, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] and report["counts"]["ready"] == 1
    assert report["pathways"][0]["landings"] == [{"from": "accueil", "to": "premier_accueil", "kind": "task"}]
    assert snapshot(parcours) == before  # bad input and the dry run changed nothing
    assert parcours.pathway(pathway_id).definition_version == 1

    moved = await migrate("--definition", "test_migr", "--to-version", "2", *maps, "--by", ADMIN)
    assert moved.returncode == 0, moved.stderr
    assert "1 déplacé(s), 0 refusé(s), 0 en échec" in moved.stdout
    await eventually(lambda: on_version(parcours, pathway_id, 2), what="on v2")
    (applied,) = audit(parcours, "definition_migration_applied")
    assert applied.actor_user_id == q.user_id_of(parcours.engine, email=ADMIN) and applied.detail["to"] == "v2"


# --- The UI: the designer prepares, an administrator confirms -------------------------------------------


async def test_designer_prepares_admin_confirms_and_pathways_move(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(V1)
    on_task = await parcours.start("test_migr")
    elsewhere = await parcours.start("test_migr", basin="genevois", referent="departement74")
    publish(parcours, V2_RENAMED)

    marc = await web.signed_in(MARC)
    page = await marc.get("/definitions/test_migr/v/2")
    assert page.status_code == 200 and "/definitions/test_migr/migrations/nouvelle?version=2" in page.text
    form = await marc.get("/definitions/test_migr/migrations/nouvelle?version=2")
    assert form.status_code == 200, form.text
    fields = {
        "csrf": csrf_of(form.text),
        "to_version": "2",
        "step_map": "\n".join(f"{k}={v}" for k, v in RENAMES.items()),
        "basin": "annecien",
    }
    preview = await marc.post("/definitions/test_migr/migrations/apercu", data=fields)
    assert preview.status_code == 200, preview.text
    assert on_task in preview.text and elsewhere not in preview.text and "premier_accueil" in preview.text
    refused = await marc.post("/definitions/test_migr/migrations/apercu", data={**fields, "step_map": "accueil"})
    assert refused.status_code == 422 and "mal formée" in refused.text
    no_csrf = await marc.post("/definitions/test_migr/migrations", data={**fields, "csrf": "x"})
    assert no_csrf.status_code == 403

    saved = await marc.post("/definitions/test_migr/migrations", data=fields)
    assert saved.status_code == 303, saved.text
    (migration,) = dm.list_migrations(parcours.engine, definition_id="test_migr")
    assert migration.status == "prepared" and migration.step_map == RENAMES and migration.basin_id == "annecien"
    assert parcours.pathway(on_task).definition_version == 1  # preparing moves nothing

    # A designer cannot confirm.
    detail = await marc.get(f"/migrations/{migration.id}")
    assert detail.status_code == 200 and "Confirmer" not in detail.text
    denied = await marc.post(f"/migrations/{migration.id}/confirmer", data={"csrf": csrf_of(detail.text)})
    assert denied.status_code == 403
    assert dm.get_migration(parcours.engine, migration_id=migration.id).status == "prepared"  # type: ignore[union-attr]

    admin = await web.signed_in(ADMIN)
    territory = await admin.get("/admin")
    assert "/admin/migrations" in territory.text
    listing = await admin.get("/admin/migrations")
    assert listing.status_code == 200 and f"/migrations/{migration.id}" in listing.text
    detail = await admin.get(f"/migrations/{migration.id}")
    assert "Confirmer" in detail.text
    confirmed = await admin.post(f"/migrations/{migration.id}/confirmer", data={"csrf": csrf_of(detail.text)})
    assert confirmed.status_code == 303, confirmed.text

    def finished() -> Any:
        row = dm.get_migration(parcours.engine, migration_id=migration.id)
        return row if row is not None and row.status == "done" else None

    row = await eventually(finished, what="migration done")
    assert row.counts["moved"] == 1 and row.confirmed_by == q.user_id_of(parcours.engine, email=ADMIN)
    progress = await admin.get(f"/migrations/{migration.id}/progression", headers={"HX-Request": "true"})
    assert progress.status_code == 200 and "1 déplacé" in progress.text
    await eventually(lambda: on_version(parcours, on_task, 2), what="on v2")
    assert parcours.pathway(elsewhere).definition_version == 1  # another basin: not chosen
    (applied,) = audit(parcours, "definition_migration_applied")
    assert applied.actor_user_id == q.user_id_of(parcours.engine, email=ADMIN) and applied.detail["moved"] == 1
