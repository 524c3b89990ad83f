"""The GTO lead's and the designer's pages, through the web app in-process (httpx): the basin's
dashboard and escalations, a decision taken from the escalation page, the meeting agenda and its
CSV; the definitions' list, drawing, diff, validation, publication, status and trial run."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from sqlmodel import select

from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import Web, csrf_of, eventually
from tests.flows import timed

LEA = "lea.dupont@example.org"  # gto_lead, annecien
KARIM = "karim.bouzid@example.org"  # gto_lead, genevois
MARC = "marc.girard@example.org"  # designer
CAMILLE = "camille.martin@example.org"  # caseworker


def open_escalations(web: Web, pathway_id: str) -> list[models.Escalation]:
    return q.list_escalations(web.parcours.engine, pathway_id=pathway_id, status="open")


def audit(web: Web, action: str) -> list[models.AuditEvent]:
    with session_scope(web.parcours.engine) as session:
        return list(session.exec(select(models.AuditEvent).where(models.AuditEvent.action == action)))


# --- GTO --------------------------------------------------------------------------------------


async def test_gto_dashboard_escalation_decision_and_agenda(web: Web) -> None:
    parcours = web.parcours
    # Escalates to the GTO about 3 s after the start; level 2 much later (no race in the test).
    parcours.publish(timed(level2="PT1H", definition_id="test_gto_pages"))
    mine = await parcours.start("test_gto_pages", basin="annecien")
    theirs = await parcours.start("test_gto_pages", basin="genevois")
    escalation = (await eventually(lambda: open_escalations(web, mine), what="escalation in annecien"))[0]
    await eventually(lambda: open_escalations(web, theirs), what="escalation in genevois")

    lea = await web.signed_in(LEA)
    dashboard = await lea.get("/gto")
    assert dashboard.status_code == 200, dashboard.text
    assert mine in dashboard.text and theirs not in dashboard.text
    assert "Tâche minutée" in dashboard.text and "France Travail Annecy" in dashboard.text
    assert "Alex Test" in dashboard.text  # a stuck pathway of her basin: name shown, view traced
    assert any(e.pathway_id == mine and e.actor_user_id == q.user_id_for(LEA) for e in audit(web, "personal_data_viewed"))
    assert 'data-step="tache"' in dashboard.text  # the heat map draws the definition's steps
    assert "Tendances" in dashboard.text

    listing = await lea.get("/gto/escalades")
    assert listing.status_code == 200 and f"/gto/escalades/{escalation.id}" in listing.text
    assert theirs not in listing.text

    page = await lea.get(f"/gto/escalades/{escalation.id}")
    assert page.status_code == 200, page.text
    case = page.text
    assert "Tâche minutée" in case and "France Travail Annecy" in case and "Escalade" in case
    assert 'name="action" value="reassign"' in case and 'value="mobilite_annecy"' in case
    assert 'value="renfort"' in case  # the definition's modules for add_step

    # Another basin's GTO may not even look.
    karim = await web.signed_in(KARIM)
    refused = await karim.get(f"/gto/escalades/{escalation.id}")
    assert refused.status_code == 403 and "autre bassin" in refused.text
    assert mine not in (await karim.get("/gto")).text

    # Agenda and CSV: one line per open escalation of the basin, no personal data.
    agenda = await lea.get("/gto/ordre-du-jour")
    assert agenda.status_code == 200 and mine in agenda.text and theirs not in agenda.text
    assert "window.print()" in agenda.text and "Alex Test" not in agenda.text
    export = await lea.get("/gto/ordre-du-jour.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.content.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
    assert lines[0][:4] == ["Référence du parcours", "Parcours", "Étape", "Partenaire"]
    basin_open = q.list_escalations(parcours.engine, basin_id="annecien", status="open")
    assert len(lines) - 1 == len(basin_open) and lines[1][0] == mine and lines[1][3] == "France Travail Annecy"
    assert "Alex" not in export.content.decode("utf-8-sig")

    # An incomplete decision is refused inline, nothing changes.
    csrf = csrf_of(case)
    incomplete = await lea.post(f"/gto/escalades/{escalation.id}", data={"csrf": csrf, "action": "reassign"})
    assert incomplete.status_code == 422 and "fr-select-group--error" in incomplete.text
    assert "Choisissez l&#39;organisation" in incomplete.text
    assert open_escalations(web, mine)
    no_csrf = await lea.post(f"/gto/escalades/{escalation.id}", data={"action": "unblock"})
    assert no_csrf.status_code == 403

    # Reassign: the task moves to the new organisation, the escalation is decided.
    decided = await lea.post(f"/gto/escalades/{escalation.id}", data={
        "csrf": csrf, "action": "reassign", "organisation_id": "mobilite_annecy", "note": "vu en GTO",
    })
    assert decided.status_code == 303, decided.text
    assert decided.headers["location"] == f"/gto/escalades/{escalation.id}"
    task = q.get_task(parcours.engine, task_id=escalation.task_id)
    assert task is not None and task.organisation_id == "mobilite_annecy" and task.status == "open"
    row = q.list_escalations(parcours.engine, pathway_id=mine, status=None)
    assert [(e.status, e.action) for e in row if e.id == escalation.id] == [("decided", "reassign")]
    after = await lea.get(decided.headers["location"])
    assert "Décision enregistrée" in after.text and "Association Mobilité Pays d&#39;Annecy" in after.text
    assert 'name="action"' not in after.text  # nothing left to decide
    again = await lea.post(f"/gto/escalades/{escalation.id}", data={"csrf": csrf, "action": "unblock"})
    assert again.status_code == 409 and "déjà été traitée" in again.text


async def test_roles_are_enforced(web: Web) -> None:
    camille = await web.signed_in(CAMILLE)
    for path in ("/gto", "/gto/escalades", "/gto/ordre-du-jour", "/gto/ordre-du-jour.csv", "/definitions",
                 "/definitions/nouvelle", "/definitions/rsa_socio_pro/v/1"):
        response = await camille.get(path)
        assert response.status_code == 403, path
    marc = await web.signed_in(MARC)
    assert (await marc.get("/gto")).status_code == 403
    anonymous = web.client()
    assert (await anonymous.get("/definitions")).status_code == 303
