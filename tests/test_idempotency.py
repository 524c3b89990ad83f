"""Idempotent commands, as a client that retries sees them: every write sent again with the same
request id (the API's Idempotency-Key, a page's form token, the CLI's --request-id) after a client
timeout acts once and gets the first answer; the same id with other values is refused; another
request on a task already closed is still a conflict.

The client timeout is simulated by a Temporal client whose next call reaches Temporal (the update
is applied, the pathway started) and then fails for the caller with DEADLINE_EXCEEDED."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from admin_ui.app import create_app
from services.errors import ServiceError
from services.pathways import PathwayService
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import Parcours, Web, csrf_of, eventually
from tests.flows import fast, flow
from tests.test_processes import base_env, cli
from worker.temporal_server import DevServer

CAMILLE = "camille.martin@example.org"  # caseworker, departement74: referent of the pathways
JULIEN = "julien.roux@example.org"  # caseworker, ft_annecy
LEA = "lea.dupont@example.org"  # GTO lead, annecien
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


# --- A client that times out after Temporal acted ----------------------------------------------


def deadline_exceeded() -> Exception:
    return RPCError("context deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")


class FlakyClient:
    """Wraps a Temporal client: once armed, its next update or start reaches Temporal (`after`,
    the default) or not (`before`), then raises `error` to the caller."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._armed: tuple[str, Callable[[], Exception]] | None = None

    def arm(self, when: str = "after", error: Callable[[], Exception] = deadline_exceeded) -> None:
        self._armed = (when, error)

    async def call(self, work: Callable[[], Awaitable[Any]]) -> Any:
        armed, self._armed = self._armed, None
        if armed is not None and armed[0] == "before":
            raise armed[1]()
        result = await work()
        if armed is not None:
            raise armed[1]()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_workflow_handle(self, workflow_id: str, **kwargs: Any) -> Any:
        return FlakyHandle(self, self._client.get_workflow_handle(workflow_id, **kwargs))

    async def execute_update_with_start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        return await self.call(lambda: self._client.execute_update_with_start_workflow(*args, **kwargs))


@dataclass
class FlakyHandle:
    owner: FlakyClient
    handle: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    async def execute_update(self, *args: Any, **kwargs: Any) -> Any:
        return await self.owner.call(lambda: self.handle.execute_update(*args, **kwargs))


def flaky_service(parcours: Parcours) -> tuple[PathwayService, FlakyClient]:
    client = FlakyClient(parcours.client)
    service = PathwayService(client, parcours.engine, task_queue=parcours.settings.task_queue)  # type: ignore[arg-type]
    return service, client


def key() -> str:
    return str(uuid.uuid4())


# --- What users observe ---------------------------------------------------------------------


def audit_count(parcours: Parcours, pathway_id: str, action: str) -> int:
    detail = q.pathway_detail(parcours.engine, pathway_id=pathway_id)
    assert detail is not None
    return sum(1 for event in detail["audit"] if event["action"] == action)


def notes_of(parcours: Parcours, pathway_id: str) -> list[str]:
    with session_scope(parcours.engine) as session:
        return [n.text for n in session.exec(select(models.Note).where(models.Note.pathway_id == pathway_id))]


def submissions_of(parcours: Parcours, task_id: str) -> int:
    with session_scope(parcours.engine) as session:
        return len(session.exec(select(models.Submission).where(models.Submission.task_id == task_id)).all())


def persons_named(parcours: Parcours, last_name: str) -> list[str]:
    with session_scope(parcours.engine) as session:
        return [p.id for p in session.exec(select(models.Person).where(models.Person.last_name == last_name))]


def pathways_of(parcours: Parcours, person_ids: list[str]) -> list[str]:
    with session_scope(parcours.engine) as session:
        query = select(models.Pathway).where(col(models.Pathway.person_id).in_(person_ids))
        return [p.id for p in session.exec(query)]


async def unavailable(call: Awaitable[Any]) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        await call
    assert refused.value.status == 503 and "momentanément indisponible" in refused.value.message, refused.value
    return refused.value


async def refused(call: Awaitable[Any], status: int, text: str) -> None:
    with pytest.raises(ServiceError) as error:
        await call
    assert error.value.status == status and text in error.value.message, error.value


# --- Every kind of write, retried after a client timeout --------------------------------------


@dataclass
class Case:
    """One kind of write: `prepare` brings a fresh pathway where it is possible and returns the
    call (service, request id) -> answer; `action` is its audit entry; `note` the text it keeps."""

    prepare: Callable[[Parcours, str], Awaitable[Callable[[PathwayService, str], Awaitable[Any]]]]
    action: str
    note: str | None = None
    submission_of: str | None = None  # the task whose form answers must be stored once


async def _complete(parcours: Parcours, pathway_id: str) -> Callable[[PathwayService, str], Awaitable[Any]]:
    task = parcours.open_task(pathway_id, "accueil")
    camille = parcours.service.actor_for(CAMILLE)
    return lambda service, rid: service.complete_task(
        task_id=task.id,
        actor=camille,
        outcome="fait",
        data={"besoin": "social", "commentaire": "premier rendez-vous"},
        request_id=rid,
    )


async def _reassign(parcours: Parcours, pathway_id: str) -> Callable[[PathwayService, str], Awaitable[Any]]:
    task = parcours.open_task(pathway_id, "accueil")
    camille = parcours.service.actor_for(CAMILLE)
    return lambda service, rid: service.reassign_task(
        task_id=task.id, actor=camille, organisation_id="ml_annecy", reason="motif de réattribution", request_id=rid
    )


async def _skip(parcours: Parcours, pathway_id: str) -> Callable[[PathwayService, str], Awaitable[Any]]:
    service, camille = parcours.service, parcours.service.actor_for(CAMILLE)
    accueil = parcours.open_task(pathway_id, "accueil")
    await service.complete_task(task_id=accueil.id, actor=camille, outcome="fait", data={"besoin": "emploi"})
    referent = parcours.open_task(pathway_id, "appui_referent")
    await service.complete_task(task_id=referent.id, actor=camille, outcome="fait", data={})
    ft = parcours.open_task(pathway_id, "appui_ft")
    await service.complete_task(task_id=ft.id, actor=service.actor_for(JULIEN), outcome="fait", data={})
    suivi = parcours.open_task(pathway_id, "suivi")
    return lambda service, rid: service.skip_step(
        task_id=suivi.id, actor=camille, reason="motif du passage", request_id=rid
    )


async def _module(parcours: Parcours, pathway_id: str) -> Callable[[PathwayService, str], Awaitable[Any]]:
    camille = parcours.service.actor_for(CAMILLE)
    return lambda service, rid: service.add_module(
        pathway_id=pathway_id, actor=camille, module_id="mobilite", reason="motif du module", request_id=rid
    )


async def _pause(parcours: Parcours, pathway_id: str) -> Callable[[PathwayService, str], Awaitable[Any]]:
    camille = parcours.service.actor_for(CAMILLE)
    return lambda service, rid: service.pause(
        pathway_id=pathway_id, actor=camille, reason="motif de suspension", request_id=rid
    )


async def _resume(parcours: Parcours, pathway_id: str) -> Callable[[PathwayService, str], Awaitable[Any]]:
    camille = parcours.service.actor_for(CAMILLE)
    await parcours.service.pause(pathway_id=pathway_id, actor=camille, reason="avant la reprise")
    return lambda service, rid: service.resume(pathway_id=pathway_id, actor=camille, request_id=rid)


async def _close(parcours: Parcours, pathway_id: str) -> Callable[[PathwayService, str], Awaitable[Any]]:
    camille = parcours.service.actor_for(CAMILLE)
    return lambda service, rid: service.close(
        pathway_id=pathway_id, actor=camille, exit_reason="formation", note="note de clôture", request_id=rid
    )


CASES = {
    "complete": Case(_complete, "task_completed", submission_of="accueil"),
    "reassign": Case(_reassign, "task_reassigned", note="motif de réattribution"),
    "skip": Case(_skip, "step_skipped", note="motif du passage"),
    "add_module": Case(_module, "module_added", note="motif du module"),
    "pause": Case(_pause, "pathway_paused", note="motif de suspension"),
    "resume": Case(_resume, "pathway_resumed"),
    "close": Case(_close, "pathway_closed", note="note de clôture"),
}


@pytest.mark.parametrize("kind", list(CASES))
async def test_an_update_retried_after_a_client_timeout_acts_once(parcours: Parcours, kind: str) -> None:
    case = CASES[kind]
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    act = await case.prepare(parcours, pathway_id)
    task_id = parcours.open_task(pathway_id, case.submission_of).id if case.submission_of else None
    before = audit_count(parcours, pathway_id, case.action)
    service, client = flaky_service(parcours)
    request_id = key()

    client.arm()  # Temporal applies the update, the caller times out
    await unavailable(act(service, request_id))
    retried = await act(service, request_id)
    again = await act(service, request_id)

    assert retried == again and retried.pathway_id == pathway_id and retried.message
    assert audit_count(parcours, pathway_id, case.action) == before + 1
    if case.note is not None:
        assert notes_of(parcours, pathway_id).count(case.note) == 1
    if task_id is not None:
        assert submissions_of(parcours, task_id) == 1


@pytest.mark.parametrize("kind", list(CASES))
async def test_an_update_retried_after_it_never_reached_temporal_acts_once(parcours: Parcours, kind: str) -> None:
    case = CASES[kind]
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    act = await case.prepare(parcours, pathway_id)
    task_id = parcours.open_task(pathway_id, case.submission_of).id if case.submission_of else None
    before = audit_count(parcours, pathway_id, case.action)
    service, client = flaky_service(parcours)
    request_id = key()

    # Temporal unreachable: the update is not applied, its note and form answers are written.
    client.arm("before", lambda: RPCError("connexion perdue", RPCStatusCode.UNAVAILABLE, b""))
    await unavailable(act(service, request_id))
    assert audit_count(parcours, pathway_id, case.action) == before
    retried = await act(service, request_id)

    assert retried.pathway_id == pathway_id and await act(service, request_id) == retried
    assert audit_count(parcours, pathway_id, case.action) == before + 1
    if case.note is not None:
        assert notes_of(parcours, pathway_id).count(case.note) == 1
    if task_id is not None:
        assert submissions_of(parcours, task_id) == 1


@BOTH
async def test_a_complete_retried_gets_the_first_answer_and_another_request_gets_409(parcours: Parcours) -> None:
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    act = await _complete(parcours, pathway_id)
    service, client = flaky_service(parcours)
    request_id = key()

    # The SDK's own form of a client timeout on an update.
    client.arm(error=WorkflowUpdateRPCTimeoutOrCancelledError)
    await unavailable(act(service, request_id))
    first = await act(service, request_id)
    assert first.message == "Tâche « Accueil » terminée : Accueil réalisé."
    assert await act(service, request_id) == first

    await refused(act(service, key()), 409, "n'est plus ouverte")
    await refused(act(parcours.service, None), 409, "n'est plus ouverte")  # type: ignore[arg-type]
    assert audit_count(parcours, pathway_id, "task_completed") == 1


@BOTH
async def test_the_same_request_sent_twice_at_once_acts_once(parcours: Parcours) -> None:
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    act = await _complete(parcours, pathway_id)
    request_id = key()

    # A double submit: both reach the service before either has an answer.
    first, second = await asyncio.gather(act(parcours.service, request_id), act(parcours.service, request_id))

    assert first == second
    assert audit_count(parcours, pathway_id, "task_completed") == 1
    task = q.list_tasks(parcours.engine, pathway_id=pathway_id, status=None)[0]
    assert submissions_of(parcours, task.id) == 1


async def test_a_gto_decision_retried_gets_the_first_answer_and_another_gets_409(parcours: Parcours) -> None:
    parcours.publish(fast("idem_gto"))
    pathway_id = await parcours.start("idem_gto")
    escalation = await eventually(
        lambda: next(iter(q.list_escalations(parcours.engine, pathway_id=pathway_id)), None),
        timeout=20,
        what="an escalation",
    )
    lea = parcours.service.actor_for(LEA)
    service, client = flaky_service(parcours)
    request_id = key()

    def decide(rid: str) -> Awaitable[Any]:
        return service.decide_escalation(
            escalation_id=escalation.id, actor=lea, action="unblock", note="décision du GTO", request_id=rid
        )

    client.arm()
    await unavailable(decide(request_id))
    first = await decide(request_id)
    assert await decide(request_id) == first and first.pathway_id == pathway_id

    await refused(decide(key()), 409, "déjà été traitée")
    assert audit_count(parcours, pathway_id, "escalation_decided") == 1
    assert notes_of(parcours, pathway_id).count("décision du GTO") == 1


async def test_a_note_sent_again_is_written_once(parcours: Parcours) -> None:
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    camille = parcours.service.actor_for(CAMILLE)
    request_id = key()

    first = parcours.service.add_note(pathway_id=pathway_id, actor=camille, text="une note", request_id=request_id)
    again = parcours.service.add_note(pathway_id=pathway_id, actor=camille, text="une note", request_id=request_id)

    assert first == again and notes_of(parcours, pathway_id) == ["une note"]
    with pytest.raises(ServiceError) as error:
        parcours.service.add_note(pathway_id=pathway_id, actor=camille, text="une autre", request_id=request_id)
    assert error.value.status == 422 and "déjà servi pour une autre demande" in error.value.message
    # Another request: another note.
    parcours.service.add_note(pathway_id=pathway_id, actor=camille, text="une note", request_id=key())
    assert notes_of(parcours, pathway_id) == ["une note", "une note"]


# --- Starting a pathway -------------------------------------------------------------------------


async def start(parcours: Parcours, service: PathwayService, request_id: str | None, last_name: str) -> str:
    return await service.start_pathway(
        definition_id="test_flow",
        basin_id="annecien",
        referent_org="departement74",
        person={"first_name": "Alex", "last_name": last_name, "consent": True},
        actor=service.actor_for(CAMILLE),
        request_id=request_id,
    )


@BOTH
async def test_a_start_retried_after_a_client_timeout_gives_the_same_pathway(parcours: Parcours) -> None:
    parcours.publish(flow())
    service, client = flaky_service(parcours)
    name, request_id = f"Test-{uuid.uuid4().hex[:8]}", key()

    client.arm()  # the pathway starts, the caller times out
    await unavailable(start(parcours, service, request_id, name))
    assert len(persons_named(parcours, name)) == 1  # kept: the pathway runs with it
    pathway_id = await start(parcours, service, request_id, name)
    assert await start(parcours, service, request_id, name) == pathway_id

    persons = persons_named(parcours, name)
    assert len(persons) == 1 and pathways_of(parcours, persons) == [pathway_id]
    assert parcours.pathway(pathway_id).person_id == persons[0]
    assert audit_count(parcours, pathway_id, "pathway_started") == 1
    # Another request is another pathway.
    other = await start(parcours, service, key(), name)
    assert other != pathway_id and len(persons_named(parcours, name)) == 2


async def test_a_start_that_never_reached_temporal_keeps_its_person_for_the_retry(parcours: Parcours) -> None:
    parcours.publish(flow())
    service, client = flaky_service(parcours)
    name, request_id = f"Test-{uuid.uuid4().hex[:8]}", key()

    client.arm("before", lambda: RPCError("serveur injoignable", RPCStatusCode.UNAVAILABLE, b""))
    await unavailable(start(parcours, service, request_id, name))
    assert len(persons_named(parcours, name)) == 1 and not pathways_of(parcours, persons_named(parcours, name))
    pathway_id = await start(parcours, service, request_id, name)

    persons = persons_named(parcours, name)
    assert len(persons) == 1 and pathways_of(parcours, persons) == [pathway_id]


async def test_a_start_refused_by_temporal_removes_its_person(parcours: Parcours) -> None:
    parcours.publish(flow())
    service, client = flaky_service(parcours)
    name, request_id = f"Test-{uuid.uuid4().hex[:8]}", key()

    client.arm("before", lambda: RPCError("argument invalide", RPCStatusCode.INVALID_ARGUMENT, b""))
    with pytest.raises(RPCError):
        await start(parcours, service, request_id, name)
    assert persons_named(parcours, name) == []  # the workflow certainly does not exist
    # Nothing happened: the same request may be sent again, and starts.
    pathway_id = await start(parcours, service, request_id, name)
    assert pathways_of(parcours, persons_named(parcours, name)) == [pathway_id]


async def test_a_start_retried_after_its_pathway_closed_gives_that_pathway(parcours: Parcours) -> None:
    parcours.publish(flow())
    service, client = flaky_service(parcours)
    name, request_id = f"Test-{uuid.uuid4().hex[:8]}", key()
    client.arm()
    await unavailable(start(parcours, service, request_id, name))
    [pathway_id] = pathways_of(parcours, persons_named(parcours, name))
    camille = parcours.service.actor_for(CAMILLE)
    await parcours.service.close(pathway_id=pathway_id, actor=camille, exit_reason="abandon")

    assert await start(parcours, service, request_id, name) == pathway_id
    assert parcours.pathway(pathway_id).status == "closed"
    assert pathways_of(parcours, persons_named(parcours, name)) == [pathway_id]


async def test_the_same_start_sent_twice_at_once_starts_one_pathway(parcours: Parcours) -> None:
    parcours.publish(flow())
    name, request_id = f"Test-{uuid.uuid4().hex[:8]}", key()

    first, second = await asyncio.gather(
        start(parcours, parcours.service, request_id, name), start(parcours, parcours.service, request_id, name)
    )

    assert first == second
    persons = persons_named(parcours, name)
    assert len(persons) == 1 and pathways_of(parcours, persons) == [first]


# --- The same key for another request ----------------------------------------------------------


@BOTH
async def test_the_same_key_with_other_values_is_refused(parcours: Parcours) -> None:
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    camille = parcours.service.actor_for(CAMILLE)
    request_id = key()
    await parcours.service.pause(pathway_id=pathway_id, actor=camille, reason="premier motif", request_id=request_id)

    for other in (
        parcours.service.pause(pathway_id=pathway_id, actor=camille, reason="autre motif", request_id=request_id),
        parcours.service.resume(pathway_id=pathway_id, actor=camille, request_id=request_id),
        start(parcours, parcours.service, request_id, "Autre"),
    ):
        await refused(other, 422, "déjà servi pour une autre demande")
    assert parcours.pathway(pathway_id).status == "paused"
    assert notes_of(parcours, pathway_id) == ["premier motif"]
    # Keys belong to their user: another user's same key is another request.
    admin = parcours.service.actor_for("admin@example.org")
    await parcours.service.resume(pathway_id=pathway_id, actor=admin, request_id=request_id)
    assert parcours.pathway(pathway_id).status == "active"


async def test_a_refused_request_frees_its_key(parcours: Parcours) -> None:
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    camille = parcours.service.actor_for(CAMILLE)
    request_id = key()

    await refused(parcours.service.resume(pathway_id=pathway_id, actor=camille, request_id=request_id), 409, "")
    # Nothing was done: the key may carry the corrected request.
    await parcours.service.pause(pathway_id=pathway_id, actor=camille, request_id=request_id)
    assert parcours.pathway(pathway_id).status == "paused"


@pytest.mark.parametrize("bad", ["", "a b", "é" * 3, "x" * 101, "-début", "a/b", "a\nb"])
async def test_a_malformed_request_id_is_refused_in_french(parcours: Parcours, bad: str) -> None:
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    camille = parcours.service.actor_for(CAMILLE)
    await refused(
        parcours.service.pause(pathway_id=pathway_id, actor=camille, request_id=bad), 422, "Clé de requête invalide"
    )
    assert parcours.pathway(pathway_id).status == "active"


# --- Through the API: the Idempotency-Key header -----------------------------------------------


def flaky_web(web: Web) -> tuple[Web, FlakyClient]:
    service, client = flaky_service(web.parcours)
    app = create_app(web.parcours.engine, web.parcours.settings, service=service)
    return Web(parcours=web.parcours, app=app), client


async def test_api_complete_retried_with_its_idempotency_key(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    task = parcours.open_task(pathway_id, "accueil")
    flaky, client = flaky_web(web)
    api = await flaky.api(CAMILLE)
    body = {"outcome": "fait", "data": {"besoin": "social"}}
    headers = {"Idempotency-Key": key()}

    client.arm()
    timed_out = await api.post(f"/api/tasks/{task.id}/complete", json=body, headers=headers)
    assert timed_out.status_code == 503 and "momentanément indisponible" in timed_out.json()["detail"]
    retried = await api.post(f"/api/tasks/{task.id}/complete", json=body, headers=headers)
    again = await api.post(f"/api/tasks/{task.id}/complete", json=body, headers=headers)

    assert retried.status_code == 200 and again.status_code == 200 and retried.json() == again.json()
    assert retried.json()["message"] == "Tâche « Accueil » terminée : Accueil réalisé."
    assert audit_count(parcours, pathway_id, "task_completed") == 1 and submissions_of(parcours, task.id) == 1
    other = await api.post(f"/api/tasks/{task.id}/complete", json=body, headers={"Idempotency-Key": key()})
    assert other.status_code == 409
    changed = await api.post(f"/api/tasks/{task.id}/complete", json={**body, "outcome": "autre"}, headers=headers)
    assert changed.status_code == 422 and "déjà servi pour une autre demande" in changed.json()["detail"]


async def test_api_start_retried_with_its_idempotency_key(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    flaky, client = flaky_web(web)
    api = await flaky.api(CAMILLE)
    name = f"Test-{uuid.uuid4().hex[:8]}"
    body = {
        "definition_id": "test_flow",
        "basin": "annecien",
        "referent_org": "departement74",
        "person": {"first_name": "Alex", "last_name": name, "consent": True},
    }
    headers = {"Idempotency-Key": key()}

    client.arm()
    timed_out = await api.post("/api/pathways", json=body, headers=headers)
    assert timed_out.status_code == 503, timed_out.text
    started = await api.post("/api/pathways", json=body, headers=headers)
    again = await api.post("/api/pathways", json=body, headers=headers)

    assert started.status_code == 201 and again.status_code == 201 and started.json() == again.json()
    persons = persons_named(parcours, name)
    assert len(persons) == 1 and pathways_of(parcours, persons) == [started.json()["pathway_id"]]


async def test_api_decision_and_reassign_retried_with_their_keys(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(fast("idem_api_gto"))
    pathway_id = await parcours.start("idem_api_gto")
    escalation = await eventually(
        lambda: next(iter(q.list_escalations(parcours.engine, pathway_id=pathway_id)), None),
        timeout=20,
        what="an escalation",
    )
    flaky, client = flaky_web(web)
    lea = await flaky.api(LEA)
    headers = {"Idempotency-Key": key()}
    url = f"/api/escalations/{escalation.id}/decision"

    client.arm()
    assert (await lea.post(url, json={"action": "unblock"}, headers=headers)).status_code == 503
    first = await lea.post(url, json={"action": "unblock"}, headers=headers)
    assert first.status_code == 200 and (await lea.post(url, json={"action": "unblock"}, headers=headers)).json() == (
        first.json()
    )
    assert (await lea.post(url, json={"action": "unblock"}, headers={"Idempotency-Key": key()})).status_code == 409
    assert audit_count(parcours, pathway_id, "escalation_decided") == 1

    task = parcours.open_task(pathway_id, "tache")
    julien = await flaky.api(JULIEN)
    reassign = {"organisation": "ml_annecy", "reason": "motif"}
    headers = {"Idempotency-Key": key()}
    client.arm()
    assert (await julien.post(f"/api/tasks/{task.id}/reassign", json=reassign, headers=headers)).status_code == 503
    moved = await julien.post(f"/api/tasks/{task.id}/reassign", json=reassign, headers=headers)
    assert moved.status_code == 200, moved.text
    assert audit_count(parcours, pathway_id, "task_reassigned") == 1


async def test_api_publish_retried_with_its_key_gets_the_first_answer(web: Web) -> None:
    designer = await web.api("marc.girard@example.org")
    source = flow().replace("id: test_flow", f"id: idem_{uuid.uuid4().hex[:6]}")
    headers = {"Idempotency-Key": key(), "Content-Type": "application/yaml"}

    first = await designer.post("/api/definitions", content=source, headers=headers)
    again = await designer.post("/api/definitions", content=source, headers=headers)

    assert first.status_code == 201 and again.status_code == 201 and first.json() == again.json()
    plain = await designer.post("/api/definitions", content=source, headers={"Content-Type": "application/yaml"})
    assert plain.status_code == 200 and plain.json()["created"] is False


@pytest.mark.parametrize("bad", ["", "a b", "x" * 101, "clé", "a;b"])
async def test_api_refuses_a_malformed_idempotency_key_naming_the_header(web: Web, bad: str) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    task = parcours.open_task(pathway_id, "accueil")
    api = await web.api(CAMILLE)

    response = await api.post(
        f"/api/tasks/{task.id}/complete",
        json={"outcome": "fait", "data": {"besoin": "social"}},
        headers={"Idempotency-Key": bad.encode("utf-8")},  # type: ignore[dict-item]
    )

    assert response.status_code == 422 and "En-tête Idempotency-Key invalide" in response.json()["detail"]
    assert parcours.open_task(pathway_id, "accueil").status == "open"


# --- Through the pages: the form token ---------------------------------------------------------


def token_of(html: str, action: str) -> str:
    form = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', html, re.S)
    assert form, f"no form posting to {action}"
    token = re.search(r'name="request_id" value="([^"]+)"', form.group(0))
    assert token, f"no request token in the form posting to {action}"
    return token.group(1)


async def test_a_page_form_sent_again_after_a_timeout_acts_once(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    task = parcours.open_task(pathway_id, "accueil")
    flaky, client = flaky_web(web)
    browser = await flaky.signed_in(CAMILLE)
    url = f"/taches/{task.id}"
    html = (await browser.get(url)).text
    token = token_of(html, url)
    assert token != token_of((await browser.get(url)).text, url)  # a new token for each rendering
    form = {"csrf": csrf_of(html), "request_id": token, "outcome": "fait", "champ.besoin": "social"}

    client.arm()
    timed_out = await browser.post(url, data=form)
    assert timed_out.status_code == 503 and "momentanément indisponible" in timed_out.text
    assert token_of(timed_out.text, url) == token  # the page keeps the token: sending again is safe
    retried = await browser.post(url, data=form)
    again = await browser.post(url, data=form)

    assert retried.status_code == 303 and again.status_code == 303
    assert audit_count(parcours, pathway_id, "task_completed") == 1 and submissions_of(parcours, task.id) == 1
    assert (await browser.post(url, data={**form, "request_id": key()})).status_code == 409


async def test_referent_page_forms_carry_tokens_and_act_once(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    flaky, client = flaky_web(web)
    browser = await flaky.signed_in(CAMILLE)
    page = f"/parcours/{pathway_id}"
    html = (await browser.get(page)).text

    pause = f"{page}/suspendre"
    form = {"csrf": csrf_of(html), "request_id": token_of(html, pause), "motif": "motif de suspension"}
    client.arm()
    assert (await browser.post(pause, data=form)).status_code == 503
    assert (await browser.post(pause, data=form)).status_code == 303
    assert audit_count(parcours, pathway_id, "pathway_paused") == 1
    assert notes_of(parcours, pathway_id) == ["motif de suspension"]

    html = (await browser.get(page)).text
    notes = f"{page}/notes"
    note = {"csrf": csrf_of(html), "request_id": token_of(html, notes), "note": "une note partagée"}
    assert (await browser.post(notes, data=note)).status_code == 303
    assert (await browser.post(notes, data=note)).status_code == 303
    assert notes_of(parcours, pathway_id).count("une note partagée") == 1
    for action in ("reprendre", "clore"):
        assert token_of(html, f"{page}/{action}")


async def test_skip_form_sent_again_after_the_step_closed_gets_the_first_answer(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    await _skip(parcours, pathway_id)
    suivi = parcours.open_task(pathway_id, "suivi")
    flaky, client = flaky_web(web)
    browser = await flaky.signed_in(CAMILLE)
    page = f"/parcours/{pathway_id}"
    html = (await browser.get(page)).text
    url = f"{page}/passer"
    form = {"csrf": csrf_of(html), "request_id": token_of(html, url), "tache": suivi.id, "motif": "déjà fait"}

    client.arm()
    assert (await browser.post(url, data=form)).status_code == 503
    retried = await browser.post(url, data=form)  # the step is no longer open: the first answer

    assert retried.status_code == 303, retried.text
    assert audit_count(parcours, pathway_id, "step_skipped") == 1
    other = await browser.post(url, data={**form, "request_id": key()})
    assert other.status_code == 409 and "plus ouverte" in other.text


async def test_start_page_sent_again_starts_one_pathway(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    flaky, client = flaky_web(web)
    browser = await flaky.signed_in(CAMILLE)
    html = (await browser.get("/parcours/nouveau?basin=annecien")).text
    name = f"Test-{uuid.uuid4().hex[:8]}"
    form = {
        "csrf": csrf_of(html),
        "request_id": token_of(html, "/parcours/nouveau"),
        "basin": "annecien",
        "definition": "test_flow",
        "first_name": "Alex",
        "last_name": name,
        "consent": "oui",
    }

    client.arm()
    assert (await browser.post("/parcours/nouveau", data=form)).status_code == 503
    started = await browser.post("/parcours/nouveau", data=form)
    again = await browser.post("/parcours/nouveau", data=form)

    assert started.status_code == 303 and again.headers["location"] == started.headers["location"]
    persons = persons_named(parcours, name)
    assert len(persons) == 1 and [f"/parcours/{p}" for p in pathways_of(parcours, persons)] == [
        started.headers["location"]
    ]


async def test_gto_decision_form_sent_again_acts_once(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(fast("idem_page_gto"))
    pathway_id = await parcours.start("idem_page_gto")
    escalation = await eventually(
        lambda: next(iter(q.list_escalations(parcours.engine, pathway_id=pathway_id)), None),
        timeout=20,
        what="an escalation",
    )
    flaky, client = flaky_web(web)
    browser = await flaky.signed_in(LEA)
    url = f"/gto/escalades/{escalation.id}"
    html = (await browser.get(url)).text
    form = {"csrf": csrf_of(html), "request_id": token_of(html, url), "action": "unblock", "note": "avis du GTO"}

    client.arm()
    assert (await browser.post(url, data=form)).status_code == 503
    assert (await browser.post(url, data=form)).status_code == 303
    assert (await browser.post(url, data=form)).status_code == 303
    assert audit_count(parcours, pathway_id, "escalation_decided") == 1
    assert notes_of(parcours, pathway_id).count("avis du GTO") == 1


# --- Through the CLI: --request-id -------------------------------------------------------------


async def test_cli_write_commands_take_a_request_id(
    parcours: Parcours, temporal_server: DevServer, database_url: str, tmp_path: Path
) -> None:
    env = base_env(
        PARCOURS_TEMPORAL_ADDRESS=temporal_server.address,
        PARCOURS_DATABASE_URL=database_url,
        PARCOURS_TASK_QUEUE=parcours.settings.task_queue,
    )

    async def parcours_cli(*args: str, check: bool = True) -> Any:
        # In a thread: this test's worker runs on the event loop.
        return await asyncio.to_thread(cli, env, *args, check=check)

    parcours.publish(flow())
    name = f"Test-{uuid.uuid4().hex[:8]}"
    person = tmp_path / "personne.json"
    person.write_text(json.dumps({"first_name": "Alex", "last_name": name, "consent": True}))
    start = ["pathways", "start", "--definition", "test_flow", "--basin", "annecien", "--referent", "departement74"]
    start += ["--person", str(person), "--by", CAMILLE, "--json", "--request-id", "demarrage-1"]

    first = json.loads((await parcours_cli(*start)).stdout)
    assert json.loads((await parcours_cli(*start)).stdout)["pathway_id"] == first["pathway_id"]
    assert len(persons_named(parcours, name)) == 1
    pathway_id = first["pathway_id"]

    task = parcours.open_task(pathway_id, "accueil")
    complete = ["tasks", "complete", task.id, "--by", CAMILLE, "--outcome", "fait", "--json"]
    complete += ["--data", '{"besoin": "social"}', "--request-id", "cloture-accueil"]
    answer = json.loads((await parcours_cli(*complete)).stdout)
    # As if the first run had crashed after Temporal applied it, before keeping its answer.
    with session_scope(parcours.engine) as session:
        row = session.get(models.CommandRequest, (parcours.service.actor_for(CAMILLE).user_id, "cloture-accueil"))
        assert row is not None
        row.result = None
        session.add(row)
    assert json.loads((await parcours_cli(*complete)).stdout) == answer
    assert json.loads((await parcours_cli(*complete)).stdout) == answer
    assert audit_count(parcours, pathway_id, "task_completed") == 1

    other = await parcours_cli(*complete[:-1], "autre-demande", check=False)
    assert other.returncode == 1 and "n'est plus ouverte" in other.stderr
    malformed = await parcours_cli(*complete[:-1], "deux mots", check=False)
    assert malformed.returncode == 1 and "--request-id invalide" in malformed.stderr
