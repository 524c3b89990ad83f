"""Incidents: a pathway whose workflow task keeps failing, or whose read-model writes are refused,
shows on the administrators' Incidents page, in the JSON API and in `parcours incidents list`,
with since when, the error in French words and its attempts; "Relancer" (or `parcours incidents
retry`) tries again at once, and once the cause is gone the pathway goes on and the incident
disappears. Faults are injected in a worker (a subclass of the interpreter, an activity that
refuses), never by stopping shared servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from temporalio import activity
from temporalio.worker import Worker

from activities.pathway_activities import PathwayActivities
from admin_ui.app import create_app
from services import incidents
from services.errors import ServiceError
from services.incidents import Incident
from services.pathways import PathwayService
from store import models
from store.db import session_scope
from tests.conftest import Parcours, Web, csrf_of, eventually
from tests.faulty_workflows import FAULT, ReminderFails
from tests.flows import flow, timed
from tests.test_processes import base_env, cli
from worker.runner import build_worker, workflow_runner
from worker.temporal_server import DevServer
from workflows.contract import COMMIT_ACTIVITY, CommitBatch
from workflows.pathway import PathwayWorkflow

ADMIN = "admin@example.org"
CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent)
JULIEN = "julien.roux@example.org"  # caseworker, ft_annecy
REFUSED = 'connection to server at "127.0.0.1", port 5432 failed: Connection refused'


class ReadModelRefuses(PathwayActivities):
    """The read model refuses every write while `down` is set, as the driver says it (its SQL and
    parameters quoted in the message, which must never reach an administrator's screen)."""

    down = False

    @activity.defn(name=COMMIT_ACTIVITY)
    async def commit(self, batch: CommitBatch) -> list[str]:
        if self.down:
            raise OperationalError(
                "INSERT INTO pathway (id, person_ref) VALUES (?, ?)", {"person_ref": "secret"}, Exception(REFUSED)
            )
        return await PathwayActivities.commit(self, batch)


@asynccontextmanager
async def worker(
    parcours: Parcours, *, workflow: type = PathwayWorkflow, activities: PathwayActivities | None = None
) -> AsyncIterator[Worker]:
    acts = activities or PathwayActivities(parcours.engine, parcours.settings)
    async with Worker(
        parcours.client,
        task_queue=parcours.settings.task_queue,
        workflows=[workflow],
        activities=[acts.commit, acts.send_notification, acts.work_calendar],
        workflow_runner=workflow_runner(),
    ) as running:
        yield running


async def incident_of(service: PathwayService, pathway_id: str) -> Incident | None:
    listed = await incidents.list_incidents(service, page=1, page_size=200)
    return next((i for i in listed.items if i.pathway_id == pathway_id), None)


def cli_env(parcours: Parcours, temporal_server: DevServer) -> dict[str, str]:
    return base_env(
        PARCOURS_TEMPORAL_ADDRESS=temporal_server.address,
        PARCOURS_DATABASE_URL=str(parcours.engine.url),
        PARCOURS_TASK_QUEUE=parcours.settings.task_queue,
    )


async def parcours_cli(env: dict[str, str], *args: str, check: bool = True) -> Any:
    return await asyncio.to_thread(cli, env, *args, check=check)


def retried_by(parcours: Parcours, pathway_id: str) -> list[str]:
    with session_scope(parcours.engine) as session:
        rows = session.exec(
            select(models.AuditEvent).where(
                models.AuditEvent.pathway_id == pathway_id, models.AuditEvent.action == "incident_retried"
            )
        )
        return [row.actor_user_id for row in rows]


async def test_a_failing_workflow_task_is_an_incident_until_fixed_and_retried(
    parcours_without_worker: Parcours, temporal_server: DevServer
) -> None:
    parcours = parcours_without_worker
    # One task whose first reminder is due two seconds after the start; nothing else for an hour.
    parcours.publish(
        timed(deadline="PT1H", reminder_before="PT3598S", reminder_after="PT1H", level1="PT1H", level2="PT1H")
    )
    web = Web(parcours=parcours, app=create_app(parcours.engine, parcours.settings, service=parcours.service))
    admin, camille = await web.signed_in(ADMIN), await web.signed_in(CAMILLE)
    julien = await web.api(JULIEN)  # the timed task's organisation, ft_annecy
    env = cli_env(parcours, temporal_server)

    async with worker(parcours, workflow=ReminderFails):  # a bug ships: firing a reminder raises
        pathway_id = await parcours.start("test_timed")
        found = await eventually(
            lambda: incident_of(parcours.service, pathway_id), timeout=90, what="the failing pathway as an incident"
        )
        assert found.kind == "task" and found.kind_label == "Traitement du parcours en échec"
        assert found.error == f"erreur du moteur : RuntimeError : {FAULT}"
        assert found.attempts >= 2 and found.since is not None
        assert (found.definition_id, found.basin_id) == ("test_timed", "annecien")

        page = await admin.get("/admin/incidents")
        assert page.status_code == 200
        assert pathway_id in page.text and FAULT in page.text and "Relancer" in page.text
        assert 'href="/admin/incidents" aria-current="page"' in page.text  # the admins' nav link

        listed = json.loads((await parcours_cli(env, "incidents", "list", "--json")).stdout)
        (row,) = [i for i in listed["items"] if i["pathway_id"] == pathway_id]
        assert row["kind"] == "task" and FAULT in row["error"] and row["attempts"] >= 2
        text = (await parcours_cli(env, "incidents", "list")).stdout
        assert pathway_id in text and "Traitement du parcours en échec" in text and FAULT in text

        # Nobody but an administrator sees or retries incidents.
        assert (await camille.get("/admin/incidents")).status_code == 403
        token = csrf_of((await camille.get("/taches")).text)
        refused = await camille.post(f"/admin/incidents/{pathway_id}/relancer", data={"csrf": token})
        assert refused.status_code == 403
        assert (await camille.get("/api/incidents")).status_code == 403
        assert retried_by(parcours, pathway_id) == []

        # Meanwhile Temporal refuses actions on the pathway (its task is in a failed state): the
        # caller is told to send the same request again, nothing is applied (never a 500).
        task_id = parcours.open_task(pathway_id, "tache").id
        complete = {"outcome": "fait", "data": {}}
        refused = await julien.post(f"/api/tasks/{task_id}/complete", json=complete, headers=RETRY_KEY)
        assert refused.status_code == 503 and "Réessayez la même demande" in refused.json()["detail"], refused.text
        assert parcours.open_task(pathway_id, "tache").id == task_id

    # The fix is deployed: the real interpreter, and an administrator clicks "Relancer".
    async with build_worker(parcours.client, engine=parcours.engine, settings=parcours.settings):
        page = await admin.get("/admin/incidents")
        answer = await admin.post(f"/admin/incidents/{pathway_id}/relancer", data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/incidents"
        assert "Nouvel essai demandé" in (await admin.get("/admin/incidents")).text

        # The pathway goes on: the reminder goes out, and the incident is gone everywhere.
        await eventually(
            lambda: any(":reminder:" in key for key in parcours.mail.keys(pathway_id)),
            timeout=90,
            what="the reminder sent once the task succeeds",
        )
        await eventually(lambda: _gone(parcours.service, pathway_id), timeout=60, what="the incident cleared")
        assert pathway_id not in (await admin.get("/admin/incidents")).text
        listed = json.loads((await parcours_cli(env, "incidents", "list", "--json")).stdout)
        assert pathway_id not in [i["pathway_id"] for i in listed["items"]]
        assert len(retried_by(parcours, pathway_id)) == 1

        # The same request, sent again now that the pathway is served, is applied once.
        done = await julien.post(f"/api/tasks/{task_id}/complete", json=complete, headers=RETRY_KEY)
        assert done.status_code == 200, done.text
        assert parcours.pathway(pathway_id).status == "closed"
    for client in (admin, camille):
        await client.aclose()


RETRY_KEY = {"Idempotency-Key": "0b8a3c55-incident-retry"}


async def _gone(service: PathwayService, pathway_id: str) -> bool:
    return await incident_of(service, pathway_id) is None


async def test_a_refused_read_model_write_is_an_incident_retried_at_once(
    parcours_without_worker: Parcours, temporal_server: DevServer
) -> None:
    parcours = parcours_without_worker
    parcours.publish(flow("all"))
    # Writes turn durable after 1 s; a durable attempt that fails waits an hour for the next one.
    service = PathwayService(
        parcours.client,
        parcours.engine,
        task_queue=parcours.settings.task_queue,
        commit_local_seconds=1,
        answer_within_seconds=1,
        commit_retry_seconds=(3600, 3600),
    )
    web = Web(parcours=parcours, app=create_app(parcours.engine, parcours.settings, service=service))
    api = await web.api(ADMIN)
    env = cli_env(parcours, temporal_server)
    activities = ReadModelRefuses(parcours.engine, parcours.settings)
    async with worker(parcours, activities=activities):
        pathway_id = await parcours.start("test_flow", service=service)
        other_id = await parcours.start("test_flow", service=service)
        camille = service.actor_for(CAMILLE)
        with pytest.raises(ServiceError) as no_incident:
            await incidents.retry(service, pathway_id=pathway_id, actor=service.actor_for(ADMIN))
        assert no_incident.value.kind == "conflict" and "n'est pas en incident" in no_incident.value.message

        activities.down = True
        for pathway in (pathway_id, other_id):
            result = await service.complete_task(
                task_id=parcours.open_task(pathway, "accueil").id,
                actor=camille,
                outcome="fait",
                data={"besoin": "emploi"},
            )
            assert result.projected is False  # recorded; the pages will follow

        found = await eventually(
            lambda: _failed_twice(service, pathway_id), timeout=60, what="a commit incident past its first attempt"
        )
        assert found.kind == "commit" and found.kind_label == "Écriture de la base de lecture"
        assert found.error == "la base de lecture refuse les écritures : connexion refusée"
        assert found.since is not None and found.next_retry is not None and found.next_retry > found.since
        await eventually(lambda: _failed_twice(service, other_id), timeout=60, what="the second pathway's incident")

        # One incident per page: two pages, each pathway on one of them.
        pages = [await incidents.list_incidents(service, page=n, page_size=1) for n in (1, 2)]
        assert [(p.total, p.pages, len(p.items)) for p in pages] == [(2, 2, 1), (2, 2, 1)]
        assert {p.items[0].pathway_id for p in pages} == {pathway_id, other_id}
        second = (await api.get("/api/incidents", params={"page": 2, "size": 1})).json()
        assert (second["total"], second["pages"], len(second["items"])) == (2, 2, 1)

        body = (await api.get("/api/incidents")).json()
        (row,) = [i for i in body["items"] if i["pathway_id"] == pathway_id]
        assert row["kind"] == "commit" and row["attempts"] >= 2 and "INSERT" not in json.dumps(body)
        text = (await parcours_cli(env, "incidents", "list")).stdout
        assert pathway_id in text and "Écriture de la base de lecture" in text and "connexion refusée" in text
        assert "secret" not in text and "INSERT" not in text

        # Refusals, in French: a caseworker, an unknown pathway.
        with pytest.raises(ServiceError) as forbidden:
            await incidents.retry(service, pathway_id=pathway_id, actor=camille)
        assert forbidden.value.kind == "forbidden"
        with pytest.raises(ServiceError) as unknown:
            await incidents.retry(service, pathway_id="P-INCONNU", actor=service.actor_for(ADMIN))
        assert unknown.value.kind == "not_found" and "Parcours inconnu" in unknown.value.message
        denied = await parcours_cli(env, "incidents", "retry", pathway_id, "--by", CAMILLE, check=False)
        assert denied.returncode == 1 and "administrateur" in denied.stderr
        assert retried_by(parcours, pathway_id) == []

        # The read model is back; without a retry the next attempts would be an hour away.
        activities.down = False
        retried = await parcours_cli(env, "incidents", "retry", pathway_id, "--by", ADMIN)
        assert "Nouvel essai d'écriture demandé" in retried.stdout
        by_api = await api.post(f"/api/incidents/{other_id}/retry")
        assert by_api.status_code == 200 and "Nouvel essai d'écriture demandé" in by_api.json()["message"]
        for pathway in (pathway_id, other_id):
            await eventually(
                lambda p=pathway: sorted(t.step_id for t in parcours.open_tasks(p)) == ["appui_ft", "appui_referent"],
                timeout=60,
                what="the read model caught up",
            )
            await eventually(lambda p=pathway: _gone(service, p), timeout=60, what="the incident cleared")
        assert (await api.get("/api/incidents")).json()["items"] == []
        assert "Aucun incident" in (await parcours_cli(env, "incidents", "list")).stdout
        admin = service.actor_for(ADMIN)
        assert retried_by(parcours, pathway_id) == retried_by(parcours, other_id) == [admin.user_id]
        api_refused = await api.post(f"/api/incidents/{pathway_id}/retry")
        assert api_refused.status_code == 409 and "n'est pas en incident" in api_refused.json()["detail"]
    await api.aclose()


async def _failed_twice(service: PathwayService, pathway_id: str) -> Incident | None:
    found = await incident_of(service, pathway_id)
    return found if found is not None and found.kind == "commit" and found.attempts >= 2 else None


async def test_no_incident_shows_an_empty_page(web: Web) -> None:
    admin = await web.signed_in(ADMIN)
    page = await admin.get("/admin/incidents")
    assert page.status_code == 200 and "Aucun incident" in page.text
    await admin.aclose()
