"""The GTO lead's and the designer's pages, through the web app in-process (httpx): the basin's
dashboard and escalations, a decision taken from the escalation page, the meeting agenda and its
CSV; the definitions' list, drawing, diff, validation, publication, status and trial run."""

from __future__ import annotations

import csv
import html
import io
import json
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
    assert any(
        e.pathway_id == mine and e.actor_user_id == q.user_id_of(web.parcours.engine, email=LEA)
        for e in audit(web, "personal_data_viewed")
    )
    # The heat map: the graph ELK lays out in the browser, each step with its open tasks and heat level.
    attribute = re.search(r'class="parcours-elk" id="carte-test_gto_pages" data-graph="([^"]+)"', dashboard.text)
    assert attribute and '<script src="/static/app/diagram.js" defer></script>' in dashboard.text
    graph = json.loads(html.unescape(attribute.group(1)))
    tache = next(n for n in graph["nodes"] if n["id"] == "tache")
    assert tache["count"] == 1 and tache["heat"] in {"escalated", "overdue"}, tache
    assert ["c", "1 ouverte dont 1 en retard"] in tache["lines"]
    assert all("heat" not in n for n in graph["nodes"] if n["id"] != "tache")
    # Without JavaScript, the list of steps says the same.
    assert re.search(
        r'<li data-step="tache">(?:(?!</li>).)*1 tâche ouverte dont 1 en retard ou escaladée</li>', dashboard.text
    )
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
    assert "data-print" in agenda.text and "Alex Test" not in agenda.text
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
    decided = await lea.post(
        f"/gto/escalades/{escalation.id}",
        data={
            "csrf": csrf,
            "action": "reassign",
            "organisation_id": "mobilite_annecy",
            "note": "vu en GTO",
        },
    )
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
    for path in (
        "/gto",
        "/gto/escalades",
        "/gto/ordre-du-jour",
        "/gto/ordre-du-jour.csv",
        "/definitions",
        "/definitions/nouvelle",
        "/definitions/rsa_socio_pro/v/1",
    ):
        response = await camille.get(path)
        assert response.status_code == 403, path
    marc = await web.signed_in(MARC)
    assert (await marc.get("/gto")).status_code == 403
    anonymous = web.client()
    assert (await anonymous.get("/definitions")).status_code == 303


# --- Designer -----------------------------------------------------------------------------------

DESIGNED = """
id: test_designer
title: Parcours conçu en test
status: experimental
basins: [all]
start: accueil
escalation:
  - {to: gto, after: 5 working days}
steps:
  - kind: task
    id: accueil
    title: Premier accueil
    role: referent
    deadline: 2 working days
    outcomes:
      - {id: fait, label: Accueil réalisé, next: NEXT}
  - kind: task
    id: orienter
    title: TITLE
    role: partner:france_travail
    deadline: 3 working days
    outcomes:
      - {id: fait, label: Orientée, next: fin}
  - {kind: end, id: fin, title: Fin, exit_reason: autre}
"""


def designed(next_step: str = "orienter", title: str = "Orientation") -> str:
    return DESIGNED.replace("NEXT", next_step).replace("TITLE", title)


async def test_designer_validates_publishes_draws_and_compares(web: Web) -> None:
    marc = await web.signed_in(MARC)
    listing = await marc.get("/definitions")
    assert (
        listing.status_code == 200
        and "rsa_socio_pro" in listing.text
        and "Parcours RSA socio-professionnel" in listing.text
    )

    # The catalog's drawing names every step, branches and module steps included.
    page = await marc.get("/definitions/rsa_socio_pro/v/1")
    assert page.status_code == 200
    # The graph ELK lays out in the browser (static/diagram.js), and the list of steps without JavaScript.
    attribute = re.search(r'class="parcours-elk" id="schema" data-graph="([^"]+)"', page.text)
    assert attribute and '<script src="/static/elk/elk.bundled.js" defer></script>' in page.text
    graph = json.loads(html.unescape(attribute.group(1)))
    ids = {n["id"] for n in graph["nodes"]} | {c["id"] for n in graph["nodes"] for c in n.get("children", [])}
    for step in (
        "orientation",
        "diagnostic",
        "accompagnement_france_travail",
        "issue_bilan",
        "suivi_emploi",
        "sortie_emploi",
        "mobilite_diagnostic",
    ):
        assert step in ids, step
    assert 'data-step="issue_bilan"' in page.text  # the fallback list
    labels = {e["label"] for e in graph["edges"]}
    assert "Personne orientée" in labels and "id: orientation" in page.text  # arrow label, YAML source
    # One renderer: no server-drawn SVG to download any more (the browser prints or saves the page).
    assert "schema.svg" not in page.text
    assert (await marc.get("/definitions/rsa_socio_pro/v/1/schema.svg")).status_code == 404

    # Pasting an invalid definition: the error names the step and the field, and the line.
    form = await marc.get("/definitions/nouvelle")
    csrf = csrf_of(form.text)
    broken = designed(next_step="orientr")
    report = await marc.post(
        "/definitions/valider",
        data={"source": broken},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert report.status_code == 200
    assert "Étape <code>accueil</code>" in report.text and "<code>outcomes[0].next</code>" in report.text
    assert "étape cible inconnue « orientr »" in report.text
    line = broken.splitlines().index("      - {id: fait, label: Accueil réalisé, next: orientr}") + 1
    assert f'id="ligne-{line}" value="{line}" class="is-error"' in report.text
    refused = await marc.post("/definitions/nouvelle", data={"csrf": csrf, "source": broken})
    assert refused.status_code == 422 and "outcomes[0].next" in refused.text and "Traceback" not in refused.text
    assert q.latest_definition(web.parcours.engine, definition_id="test_designer") is None
    garbage = await marc.post("/definitions/valider", data={"source": "id: [oops"}, headers={"X-CSRF-Token": csrf})
    assert "YAML invalide" in garbage.text

    # Fixed, uploaded as a file: valid, then published as version 1.
    fixed = designed()
    checked = await marc.post(
        "/definitions/valider",
        data={"source": ""},
        files={"fichier": ("p.yaml", fixed.encode(), "text/yaml")},
        headers={"X-CSRF-Token": csrf},
    )
    assert "Définition valide" in checked.text and "créera la version 1" in checked.text
    published = await marc.post("/definitions/nouvelle", data={"csrf": csrf, "source": fixed})
    assert published.status_code == 303 and published.headers["location"] == "/definitions/test_designer/v/1"
    # A changed title makes version 2; the same text again makes nothing new.
    renamed = designed(title="Orientation professionnelle")
    second = await marc.post("/definitions/nouvelle", data={"csrf": csrf, "source": renamed})
    assert second.headers["location"] == "/definitions/test_designer/v/2"
    same = await marc.post("/definitions/nouvelle", data={"csrf": csrf, "source": renamed})
    assert same.headers["location"] == "/definitions/test_designer/v/2"
    shown = (await marc.get(same.headers["location"])).text
    assert "Contenu identique à la version 2" in shown, shown[shown.find("<main") : shown.find("<main") + 1500]

    diff = await marc.get("/definitions/test_designer/diff?from=1&to=2")
    assert diff.status_code == 200
    assert "titre « Orientation » → « Orientation professionnelle »" in diff.text
    assert "parcours-diff__add" in diff.text and "-    title: Orientation" in diff.text

    # Status and basins of a version: stored, in the body new runs start from, audited.
    bad = await marc.post("/definitions/test_designer/v/2/statut", data={"csrf": csrf, "status": "active"})
    assert bad.status_code == 422 and "Cochez au moins un bassin" in bad.text
    changed = await marc.post(
        "/definitions/test_designer/v/2/statut",
        data={"csrf": csrf, "status": "active", "basins": ["annecien", "chablais"]},
    )
    assert changed.status_code == 303
    latest = q.latest_definition(web.parcours.engine, definition_id="test_designer")
    assert latest is not None and latest.status == "active" and latest.basins == ["annecien", "chablais"]
    with session_scope(web.parcours.engine) as session:
        row = session.get(models.DefinitionVersion, ("test_designer", 2))
        assert row is not None and (row.status, row.basins) == ("active", ["annecien", "chablais"])
    events = audit(web, "definition_status_changed")
    assert [(e.detail["definition"], e.detail["status"]) for e in events] == [("test_designer", "active")]
    listing = await marc.get("/definitions")
    assert "test_designer" in listing.text and "Bassin annécien, Chablais" in listing.text


async def test_trying_a_definition_runs_it_with_short_durations(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(designed())
    marc = await web.signed_in(MARC)
    page = await marc.get("/definitions/test_designer/v/1")
    started = await marc.post(
        "/definitions/test_designer/v/1/essai",
        data={"csrf": csrf_of(page.text), "basin": "annecien"},
    )
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert re.fullmatch(r"/definitions/essais/P-[0-9A-F]+", location)
    pathway_id = location.rsplit("/", 1)[1]

    trial = q.latest_definition(parcours.engine, definition_id="test_designer_essai")
    assert trial is not None and trial.status == "experimental"
    assert trial.step("accueil").deadline.seconds == 20  # type: ignore[union-attr]  # 2 working days = 20 s
    assert trial.escalation[0].after.seconds == 50
    pathway = parcours.pathway(pathway_id)
    assert (pathway.definition_id, pathway.basin_id, pathway.referent_org) == (
        "test_designer_essai",
        "annecien",
        "departement74",
    )

    live = await marc.get(location)
    assert live.status_code == 200
    assert (
        "Premier accueil" in live.text and 'data-step="accueil"' in live.text and 'hx-trigger="every 2s"' in live.text
    )
    assert "Fictive" not in live.text  # designers never see a person
    fragment = await eventually(
        lambda: _fragment_with(marc, location, "Nouvelle tâche"),
        what="the assignment e-mail on the trial page",
    )
    assert fragment.startswith('<div id="essai-direct"') and "<html" not in fragment
    # Only trial pathways are shown here.
    real = await parcours.start("test_designer")
    assert (await marc.get(f"/definitions/essais/{real}")).status_code == 404


async def _fragment_with(client: Any, location: str, text: str) -> str | None:
    response = await client.get(location, headers={"HX-Request": "true"})
    return response.text.strip() if text in response.text else None
