"""The application layer (services/): who may act is checked before anything is stored, whatever
the front end; need-to-know for reads (closed pathways too); presenters shared by every front end."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from activities.emails import SUBJECT_MAX, render_email
from parcours.presenters import GTO_ACTIONS, csv_cell, french_date, french_datetime
from services.errors import ServiceError
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import Parcours, Web, csrf_of, eventually
from tests.flows import fast, flow

CAMILLE = "camille.martin@example.org"  # caseworker, departement74: referent
SARAH = "sarah.benali@example.org"  # caseworker, ml_annecy: outside the follow-up group
LEA = "lea.dupont@example.org"  # GTO lead, annecien
KARIM = "karim.bouzid@example.org"  # GTO lead, genevois
SECRET = "texte confidentiel de l'intrus"


def stored(parcours: Parcours) -> tuple[int, int, int]:
    """Notes, form answers and persons in the read model."""
    with session_scope(parcours.engine) as session:
        return (
            session.exec(select(func.count()).select_from(models.Note)).one(),
            session.exec(select(func.count()).select_from(models.Submission)).one(),
            session.exec(select(func.count()).select_from(models.Person)).one(),
        )


async def refused(action: Awaitable[Any] | Callable[[], Any], status: int = 403) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        result = action() if callable(action) else action
        if isinstance(result, Awaitable):
            await result
    assert caught.value.status == status, caught.value.message
    return caught.value


async def test_an_outsider_is_refused_on_every_action_and_nothing_they_sent_is_stored(parcours: Parcours) -> None:
    """Checked against the service before this change: reassign, skip, add_module, pause and close
    stored the outsider's note before the workflow refused; decide_escalation stored the other
    basin's GTO lead's note; start_pathway accepted another organisation as referent."""
    service = parcours.service
    parcours.publish(flow())
    parcours.publish(fast())
    pathway_id = await parcours.start("test_flow")
    escalated = await parcours.start("test_fast")
    task = parcours.open_task(pathway_id, "accueil")
    escalation = (
        await eventually(
            lambda: q.list_escalations(parcours.engine, pathway_id=escalated, status="open"),
            timeout=20,
            what="an escalation",
        )
    )[0]
    outsider = service.actor_for(SARAH)
    other_gto = service.actor_for(KARIM)
    before = stored(parcours)

    await refused(
        service.complete_task(
            task_id=task.id, actor=outsider, outcome="fait", data={"besoin": "emploi", "commentaire": SECRET}
        )
    )
    await refused(service.reassign_task(task_id=task.id, actor=outsider, organisation_id="ml_annecy", reason=SECRET))
    await refused(service.skip_step(task_id=task.id, actor=outsider, reason=SECRET))
    await refused(service.add_module(pathway_id=pathway_id, actor=outsider, module_id="mobilite", reason=SECRET))
    await refused(service.pause(pathway_id=pathway_id, actor=outsider, reason=SECRET))
    await refused(service.resume(pathway_id=pathway_id, actor=outsider))
    await refused(service.close(pathway_id=pathway_id, actor=outsider, exit_reason="abandon", note=SECRET))
    await refused(lambda: service.add_note(pathway_id=pathway_id, actor=outsider, text=SECRET))
    await refused(
        service.decide_escalation(escalation_id=escalation.id, actor=other_gto, action="unblock", note=SECRET)
    )
    await refused(
        service.start_pathway(
            definition_id="test_flow",
            basin_id="annecien",
            referent_org="departement74",
            person={"first_name": "Intrus", "last_name": "Test", "consent": True},
            actor=outsider,
        )
    )
    assert stored(parcours) == before
    with session_scope(parcours.engine) as session:
        assert not session.exec(select(models.Note).where(models.Note.text == SECRET)).all()
    assert parcours.pathway(pathway_id).status == "active"
    assert parcours.open_task(pathway_id, "accueil").organisation_id == "departement74"

    # The rightful actors still can.
    camille = service.actor_for(CAMILLE)
    service.add_note(pathway_id=pathway_id, actor=camille, text="Note du référent")
    result = await service.decide_escalation(
        escalation_id=escalation.id, actor=service.actor_for(LEA), action="unblock", note="Relancé"
    )
    assert result.pathway_id == escalated


async def test_a_trial_copy_cannot_be_started_for_a_real_person(parcours: Parcours) -> None:
    """Checked against the service before this change: any front end could start `…_essai`."""
    parcours.publish(flow().replace("id: test_flow", "id: test_flow_essai", 1))
    before = stored(parcours)
    error = await refused(parcours.start("test_flow_essai"))
    assert "essai" in error.message
    assert stored(parcours) == before
    # The designer's trial route has its own function.
    designer = parcours.service.actor_for("marc.girard@example.org")
    pathway_id = await parcours.service.start_trial(
        definition_id="test_flow_essai", basin_id="annecien", referent_org="departement74", actor=designer
    )
    assert parcours.pathway(pathway_id).definition_id == "test_flow_essai"
    await refused(
        parcours.service.start_trial(
            definition_id="test_flow_essai",
            basin_id="annecien",
            referent_org="departement74",
            actor=parcours.service.actor_for(CAMILLE),
        )
    )


async def test_the_api_refuses_a_trial_copy_and_another_referent(web: Web) -> None:
    web.parcours.publish(flow().replace("id: test_flow", "id: test_flow_essai", 1))
    api = await web.api(CAMILLE)
    person = {"first_name": "Alex", "last_name": "Test", "consent": True}
    trial = await api.post(
        "/api/pathways",
        json={
            "definition_id": "test_flow_essai",
            "basin": "annecien",
            "referent_org": "departement74",
            "person": person,
        },
    )
    assert trial.status_code == 403 and "essai" in trial.json()["detail"]


async def test_a_closed_pathway_stays_readable_by_its_referent_and_follow_up_group(web: Web) -> None:
    """Checked against the pages and API before this change: 403 for the referent once closed."""
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    await parcours.service.close(
        pathway_id=pathway_id, actor=parcours.service.actor_for(CAMILLE), exit_reason="abandon"
    )
    assert parcours.pathway(pathway_id).status == "closed"
    camille = await web.signed_in(CAMILLE)
    page = await camille.get(f"/parcours/{pathway_id}")
    assert page.status_code == 200 and "Alex" in page.text
    api = await web.api(CAMILLE)
    detail = await api.get(f"/api/pathways/{pathway_id}")
    assert detail.status_code == 200
    assert detail.json()["pathway"]["exit_reason"] == "abandon" and detail.json()["person"]["first_name"] == "Alex"
    # Never in the group: still refused.
    sarah = await web.api(SARAH)
    assert (await sarah.get(f"/api/pathways/{pathway_id}")).status_code == 403
    # Once anonymised, no longer readable.
    with session_scope(parcours.engine) as session:
        person = session.get(models.Person, parcours.pathway(pathway_id).person_id)
        assert person is not None
        person.anonymised_at = q.now()
        session.add(person)
    assert (await api.get(f"/api/pathways/{pathway_id}")).status_code == 403


async def test_the_cli_shows_a_closed_pathway_with_its_exit_reason(parcours: Parcours, tmp_path: Path) -> None:
    """Checked against worker/cli.py before this change: the exit reason was not shown."""
    from tests.test_processes import base_env, cli

    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    await parcours.service.close(
        pathway_id=pathway_id, actor=parcours.service.actor_for(CAMILLE), exit_reason="abandon"
    )
    env = base_env(PARCOURS_DATABASE_URL=str(parcours.engine.url), PARCOURS_DATA_DIR=str(tmp_path))
    shown = cli(env, "pathways", "show", pathway_id).stdout
    assert "clos le" in shown and "motif de sortie" in shown and "(abandon)" in shown, shown


def viewed(parcours: Parcours, pathway_id: str) -> int:
    with session_scope(parcours.engine) as session:
        return len(
            session.exec(
                select(models.AuditEvent).where(
                    models.AuditEvent.pathway_id == pathway_id, models.AuditEvent.action == "personal_data_viewed"
                )
            ).all()
        )


async def test_a_post_does_not_write_a_personal_data_viewed_audit(web: Web) -> None:
    """Checked against the pages before this change: a refused POST on the task page traced a view."""
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    task = parcours.open_task(pathway_id, "accueil")
    camille = await web.signed_in(CAMILLE)
    page = await camille.get(f"/taches/{task.id}")
    assert page.status_code == 200
    views = viewed(parcours, pathway_id)
    posted = await camille.post(f"/taches/{task.id}", data={"csrf": csrf_of(page.text), "outcome": "inconnue"})
    assert posted.status_code == 422
    assert viewed(parcours, pathway_id) == views


async def test_the_agenda_csv_neutralises_formulas_and_the_dashboard_links_to_the_escalation(web: Web) -> None:
    """Checked against the GTO pages before this change: the cell started with '=' and the
    dashboard linked to the list of escalations."""
    parcours = web.parcours
    parcours.publish(fast().replace("title: Parcours minuté", 'title: "=HYPERLINK(\\"http://x\\")"', 1))
    pathway_id = await parcours.start("test_fast")
    escalation = (
        await eventually(
            lambda: q.list_escalations(parcours.engine, pathway_id=pathway_id, status="open"),
            timeout=20,
            what="escalation",
        )
    )[0]
    lea = await web.signed_in(LEA)
    export = await lea.get("/gto/ordre-du-jour.csv")
    lines = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
    row = next(line for line in lines if line[0] == pathway_id)
    assert row[1] == '\'=HYPERLINK("http://x")'
    dashboard = await lea.get("/gto")
    assert f'href="/gto/escalades/{escalation.id}"' in dashboard.text


def test_csv_cells_starting_like_a_formula_get_a_quote() -> None:
    for dangerous in ("=1+1", "+33", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell("Parcours RSA") == "Parcours RSA" and csv_cell(None) == ""


def test_one_french_date_formatter_in_paris_time() -> None:
    moment = datetime(2026, 12, 3, 13, 5, tzinfo=UTC)
    assert french_datetime(moment) == "3 décembre 2026 à 14 h 05"
    assert french_datetime(moment.replace(tzinfo=None)) == "3 décembre 2026 à 14 h 05"  # naive = UTC
    assert french_date(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == "1 juillet 2026"


def test_email_subjects_are_trimmed_and_say_the_decision() -> None:
    """Checked against activities.emails before this change: a 300-character title made a 300+ subject."""
    context = {
        "step_title": "Étape " * 60,
        "pathway_id": "P-0123456789",
        "definition": "Parcours RSA",
        "basin": "Chablais",
        "organisation": "France Travail Thonon",
        "due_at": None,
        "level": 1,
        "action": "extend",
        "link": "http://parcours.test/parcours/P-0123456789",
        "territory": "Haute-Savoie",
    }
    email = render_email("escalation_decided", context)
    assert len(email.subject) <= SUBJECT_MAX and email.subject.endswith("…") and "  " not in email.subject
    assert GTO_ACTIONS["extend"].done in email.body


async def test_a_gto_extension_is_bounded_to_about_two_years(parcours: Parcours) -> None:
    from temporalio.client import WorkflowUpdateFailedError

    from workflows.model import GtoDecision
    from workflows.pathway import PathwayWorkflow

    parcours.publish(fast(level2="PT1H"))
    pathway_id = await parcours.start("test_fast")
    escalation = (
        await eventually(
            lambda: q.list_escalations(parcours.engine, pathway_id=pathway_id, status="open"), what="an escalation"
        )
    )[0]
    lea = parcours.service.actor_for(LEA)
    before = stored(parcours)
    with pytest.raises(ServiceError, match="Prolongation refusée : délai trop long") as refused:
        await parcours.service.decide_escalation(
            escalation_id=escalation.id, actor=lea, action="extend", extend_by="501 jours ouvrés", note=SECRET
        )
    assert refused.value.status == 422 and stored(parcours) == before
    # The workflow refuses it too, whatever sends it.
    handle = parcours.client.get_workflow_handle(pathway_id)
    with pytest.raises(WorkflowUpdateFailedError) as rejected:
        await handle.execute_update(
            PathwayWorkflow.decide_escalation,
            GtoDecision(escalation_id=escalation.id, actor=lea, action="extend", extend_by="P731D"),
        )
    assert "délai trop long" in str(rejected.value.cause)
    result = await parcours.service.decide_escalation(
        escalation_id=escalation.id, actor=lea, action="extend", extend_by="5 jours ouvrés"
    )
    assert "Décision enregistrée" in result.message
