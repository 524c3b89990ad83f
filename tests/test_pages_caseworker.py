"""The caseworkers' pages (inbox, task, pathway, start) through the web app, in-process (httpx),
on a real Temporal worker and read model."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlmodel import select

from admin_ui.web import due_label
from definitions.durations import add_working_days
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import Web, csrf_of

CAMILLE = "camille.martin@example.org"  # departement74: referent
JULIEN = "julien.roux@example.org"  # ft_annecy
SARAH = "sarah.benali@example.org"  # ml_annecy

ALL_FIELDS = """
id: test_formulaire
title: Parcours formulaire complet
status: active
basins: [all]
start: saisie
steps:
  - kind: task
    id: saisie
    title: Saisie complète
    instructions: Remplir chaque champ avec la personne.
    role: referent
    deadline: 5 working days
    form:
      - id: synthese
        label: Synthèse de l'entretien
        type: text
        required: true
        help: Quelques lignes.
      - {id: nom_employeur, label: Nom de l'employeur, type: text}
      - {id: heures, label: Heures par semaine, type: number, minimum: 0, maximum: 35}
      - {id: date_rdv, label: Date du rendez-vous, type: date}
      - id: secteur
        label: Secteur visé
        type: choice
        choices:
          - {value: btp, label: BTP}
          - {value: commerce, label: Commerce}
          - {value: sante, label: Santé}
      - id: metier
        label: Métier
        type: choice
        choices:
          - {value: macon, label: Maçon}
          - {value: vendeur, label: Vendeur}
          - {value: aide_soignant, label: Aide-soignant}
          - {value: cariste, label: Cariste}
          - {value: cuisinier, label: Cuisinier}
      - {id: mobile, label: Personne mobile, type: yes_no, required: true}
      - id: savoir_etre
        label: Savoir-être observés
        type: soft_skills
        skills: [autonomie, rigueur, curiosite]
    outcomes:
      - {id: valide, label: Saisie validée, next: bilan}
      - {id: abandon, label: Abandon, next: fin}
  - kind: task
    id: bilan
    title: Bilan facultatif
    role: referent
    optional: true
    skip_to: fin
    outcomes: [{id: fait, label: Bilan fait, next: fin}]
  - {kind: end, id: fin, title: Fin du parcours, exit_reason: emploi_durable}
modules:
  - id: mobilite
    title: Module mobilité
    steps:
      - kind: task
        id: mobilite_diag
        title: Diagnostic mobilité
        role: "partner:association"
        outcomes: [{id: fait, label: Fait}]
"""

VALID_FORM = {
    "champ.synthese": "Entretien riche.\nProjet dans le BTP.",
    "champ.nom_employeur": "Bâti 74",
    "champ.heures": "24",
    "champ.date_rdv": "2026-03-02",
    "champ.secteur": "btp",
    "champ.metier": "macon",
    "champ.mobile": "oui",
    "champ.savoir_etre.autonomie": "3",
    "champ.savoir_etre.rigueur": "4",
    "champ.savoir_etre.curiosite": "",
}


def valid_nir() -> str:
    body = "1850578006048"
    return body + f"{97 - int(body) % 97:02d}"


async def page(client: Any, url: str) -> tuple[int, str]:
    response = await client.get(url)
    return response.status_code, response.text


async def post(client: Any, url: str, data: dict[str, Any], *, csrf_from: str | None = None) -> Any:
    html = (await client.get(csrf_from or url)).text
    return await client.post(url, data={"csrf": csrf_of(html), **data})


def add_tasks(
    engine: Any,
    count: int,
    *,
    basin: str,
    definition: str,
    org: str = "departement74",
    sla: str = "on_time",
    due_days: int = 5,
    status: str = "open",
    prefix: str = "T",
) -> None:
    now = q.now()
    with session_scope(engine) as session:
        for n in range(count):
            session.add(
                models.Task(
                    id=f"{prefix}-{basin}-{n:03d}",
                    pathway_id=f"P-FAKE{n:03d}",
                    step_id="diagnostic",
                    title=f"Tâche {prefix} {n:03d}",
                    definition_id=definition,
                    basin_id=basin,
                    organisation_id=org,
                    status=status,
                    sla=sla,
                    due_at=add_working_days(now, due_days) + timedelta(minutes=n),
                    opened_at=now - timedelta(days=3),
                )
            )


# --- Inbox ------------------------------------------------------------------------------------


async def test_inbox_lists_tasks_with_badges_counts_pagination_and_filters(web: Web) -> None:
    engine = web.parcours.engine
    add_tasks(engine, 24, basin="annecien", definition="rsa_socio_pro", prefix="A")
    add_tasks(
        engine,
        3,
        basin="annecien",
        definition="rsa_socio_pro",
        sla="overdue",
        due_days=-3,
        prefix="L",
    )
    add_tasks(
        engine,
        2,
        basin="genevois",
        definition="deld_immersion",
        sla="due_soon",
        due_days=1,
        prefix="G",
    )
    add_tasks(engine, 1, basin="genevois", definition="deld_immersion", status="done", prefix="D")
    add_tasks(engine, 2, basin="annecien", definition="rsa_socio_pro", org="ft_annecy", prefix="F")
    client = await web.signed_in(CAMILLE)

    status, html = await page(client, "/taches")
    assert status == 200
    assert 'aria-current="page">Mes tâches' in html
    assert "<strong>29</strong> tâches ouvertes" in html and "<strong>3</strong> en retard" in html
    assert "<strong>2</strong> à échéance proche" in html
    rows = re.findall(r'data-task="([^"]+)"', html)
    assert len(rows) == 25
    assert rows[:3] == ["L-annecien-000", "L-annecien-001", "L-annecien-002"], "sorted by deadline, the late ones first"
    assert "F-annecien-000" not in html, "another organisation's tasks never show"
    overdue = q.get_task(engine, task_id="L-annecien-000")
    assert "En retard" in html and due_label(overdue.due_at) in html and "en retard de " in html
    assert "Échéance proche" in html and "fr-badge--warning" in html
    assert 'class="fr-pagination' in html and 'aria-current="page" title="Page 1"' in html and "page=2" in html
    assert 'href="/taches/L-annecien-000"' in html

    status, html = await page(client, "/taches?page=2")
    assert len(re.findall(r'data-task="', html)) == 4 and 'aria-current="page" title="Page 2"' in html

    _, html = await page(client, "/taches?bassin=genevois")
    assert re.findall(r'data-task="([^"]+)"', html) == ["G-genevois-000", "G-genevois-001"]
    assert "fr-pagination" not in html
    _, html = await page(client, "/taches?sla=overdue&type=rsa_socio_pro")
    assert len(re.findall(r'data-task="', html)) == 3
    _, html = await page(client, "/taches?statut=done")
    assert re.findall(r'data-task="([^"]+)"', html) == ["D-genevois-000"] and "Terminée" in html

    # htmx: only the results are sent back to swap the table (the form works without it too)
    response = await client.get("/taches?type=deld_immersion", headers={"HX-Request": "true"})
    assert response.status_code == 200 and "<html" not in response.text
    assert response.text.lstrip().startswith('<div id="inbox-results">') and response.text.count('data-task="') == 2
    _, html = await page(client, "/taches")
    assert 'hx-get="/taches"' in html and 'hx-target="#inbox-results"' in html


# --- Task page --------------------------------------------------------------------------------


async def test_task_page_renders_every_field_type(web: Web) -> None:
    parcours = web.parcours
    definition_id = parcours.publish(ALL_FIELDS)
    pathway_id = await parcours.start(definition_id)
    task = parcours.open_task(pathway_id, "saisie")
    client = await web.signed_in(CAMILLE)

    status, html = await page(client, f"/taches/{task.id}")
    assert status == 200, html
    assert "Saisie complète" in html and "Remplir chaque champ avec la personne." in html
    assert pathway_id in html and 'id="person-name">Alex TEST<' in html
    # text: a textarea for free text, an input for a short one; number with bounds; date
    assert re.search(r'<textarea class="fr-input" id="champ-synthese" name="champ.synthese"', html)
    assert re.search(r'<input class="fr-input" type="text" id="champ-nom_employeur"', html)
    assert re.search(r'type="number"[^>]*id="champ-heures"[^>]*min="0" max="35"', html)
    assert re.search(r'type="date" id="champ-date_rdv"', html)
    # choice: radios when few, a select when many; yes/no radios
    assert 'type="radio" id="champ-secteur-btp" name="champ.secteur" value="btp"' in html
    assert (
        re.search(r'<select class="fr-select" id="champ-metier" name="champ.metier"', html)
        and ">Cuisinier</option>" in html
    )
    assert 'name="champ.mobile" value="oui"' in html and 'name="champ.mobile" value="non"' in html
    assert '<label class="fr-label" for="champ-mobile-oui">Oui</label>' in html
    # soft skills: one row per skill, radios 1..4 with the scale's labels
    for skill in ("Autonomie", "Rigueur", "Curiosité"):
        assert f'<th scope="row">{skill}</th>' in html
    assert "Travail en équipe" not in html
    for level, label in (
        (1, "À développer"),
        (2, "En cours d&#39;acquisition"),
        (3, "Acquis"),
        (4, "Maîtrisé"),
    ):
        assert f'name="champ.savoir_etre.rigueur" value="{level}"' in html and label in html
    # labels for every input
    for input_id in re.findall(r'<(?:input|select|textarea)[^>]* id="([^"]+)"', html):
        assert f'for="{input_id}"' in html or input_id in ("consent",), f"no label for #{input_id}"
    # outcomes as submit buttons; progress while saving
    assert 'type="submit" name="outcome" value="valide">Saisie validée' in html and 'value="abandon">Abandon' in html
    assert 'hx-disabled-elt="#task-saving-form button"' in html and "Enregistrement…" in html
    # the view of personal data is traced
    with session_scope(parcours.engine) as session:
        views = session.exec(select(models.AuditEvent).where(models.AuditEvent.action == "personal_data_viewed")).all()
    assert [e.pathway_id for e in views] == [pathway_id]


async def test_invalid_submission_is_shown_inline_then_completion_opens_the_next_task(
    web: Web,
) -> None:
    parcours = web.parcours
    pathway_id = await parcours.start(parcours.publish(ALL_FIELDS))
    task = parcours.open_task(pathway_id, "saisie")
    client = await web.signed_in(CAMILLE)

    entered = {**VALID_FORM, "champ.synthese": "  ", "champ.heures": "50", "outcome": "valide"}
    response = await post(client, f"/taches/{task.id}", entered)
    assert response.status_code == 422
    html = response.text
    assert "fr-input-group--error" in html and 'role="alert"' in html
    assert re.search(r'aria-describedby="champ-synthese-hint champ-synthese-error"', html)
    assert (
        '<p id="champ-synthese-error" class="fr-error-text">« Synthèse de l&#39;entretien » est obligatoire</p>' in html
    )
    assert '<p id="champ-heures-error" class="fr-error-text">« Heures par semaine » doit être au plus 35</p>' in html
    # what was entered is kept
    assert 'value="Bâti 74"' in html and 'value="50"' in html and 'value="btp" checked' in html
    assert 'name="champ.savoir_etre.rigueur" value="4" checked' in html and '<option value="macon" selected>' in html
    assert parcours.open_task(pathway_id, "saisie").id == task.id

    response = await post(client, f"/taches/{task.id}", {**VALID_FORM, "outcome": "valide"})
    assert response.status_code == 303 and response.headers["location"] == f"/parcours/{pathway_id}"
    status, html = await page(client, response.headers["location"])
    assert status == 200 and "Tâche terminée : « Saisie complète » — Saisie validée." in html
    following = parcours.open_task(pathway_id, "bilan")
    assert f'href="/taches/{following.id}"' in html
    with session_scope(parcours.engine) as session:
        submission = session.exec(select(models.Submission).where(models.Submission.task_id == task.id)).one()
    assert submission.data["savoir_etre"] == {"autonomie": 3, "rigueur": 4} and submission.data["mobile"] is True

    _, html = await page(client, "/taches")
    assert f'data-task="{following.id}"' in html and f'data-task="{task.id}"' not in html
    # the done task reads back its answers; a second submission is refused as an alert (409)
    status, html = await page(client, f"/taches/{task.id}")
    assert (
        status == 200
        and "Réponses enregistrées" in html
        and "Rigueur : Maîtrisé" in html
        and 'name="outcome"' not in html
    )
    response = await post(client, f"/taches/{task.id}", {**VALID_FORM, "outcome": "valide"})
    assert response.status_code == 409 and "n&#39;est plus ouverte" in response.text and 'role="alert"' in response.text


async def test_reassign_moves_the_task_and_other_organisations_are_refused(web: Web) -> None:
    parcours = web.parcours
    pathway_id = await parcours.start(parcours.publish(ALL_FIELDS))
    task = parcours.open_task(pathway_id, "saisie")
    camille, julien, sarah = (
        await web.signed_in(CAMILLE),
        await web.signed_in(JULIEN),
        await web.signed_in(SARAH),
    )

    for client in (julien, sarah):
        assert (await client.get(f"/taches/{task.id}")).status_code == 403
        status, html = await page(client, f"/parcours/{pathway_id}")
        assert status == 403 and "Accès refusé" in html and "Alex" not in html
    response = await post(julien, f"/taches/{task.id}", {**VALID_FORM, "outcome": "valide"}, csrf_from="/taches")
    assert response.status_code == 403

    response = await post(
        camille,
        f"/taches/{task.id}/reattribuer",
        {"organisation": "ft_annecy", "motif": ""},
        csrf_from=f"/taches/{task.id}",
    )
    assert response.status_code == 422
    assert (
        '<p id="reassign-reason-error" class="fr-error-text">' in response.text
        and '<option value="ft_annecy" selected>' in response.text
    )
    response = await post(
        camille,
        f"/taches/{task.id}/reattribuer",
        {"organisation": "ft_annecy", "motif": "Relève de France Travail"},
        csrf_from=f"/taches/{task.id}",
    )
    assert response.status_code == 303, response.text
    status, html = await page(camille, response.headers["location"])
    assert "réattribuée à France Travail Annecy" in html and "Relève de France Travail" in html

    _, html = await page(julien, "/taches")
    assert f'data-task="{task.id}"' in html
    status, html = await page(julien, f"/taches/{task.id}")
    assert status == 200 and 'name="outcome"' in html
    # the Département still follows the pathway: it may view the task, no longer complete it
    status, html = await page(camille, f"/taches/{task.id}")
    assert status == 200 and "Consultation seule" in html and 'name="outcome"' not in html
    _, html = await page(camille, "/taches")
    assert f'data-task="{task.id}"' not in html

    # other roles never reach these pages; without a session, the sign-in page
    gto = await web.signed_in("lea.dupont@example.org")
    assert (await gto.get("/taches")).status_code == 403
    anonymous = web.client()
    response = await anonymous.get("/taches")
    assert response.status_code == 303 and response.headers["location"].startswith("/connexion")


async def test_csrf_is_required_on_every_form(web: Web) -> None:
    parcours = web.parcours
    pathway_id = await parcours.start("rsa_socio_pro")
    task = parcours.open_tasks(pathway_id)[0]
    client = await web.signed_in(CAMILLE)
    for url, data in (
        (f"/taches/{task.id}", {"outcome": "orientee", "champ.type_orientation": "sociale"}),
        (f"/taches/{task.id}/reattribuer", {"organisation": "caf74", "motif": "x"}),
        (f"/parcours/{pathway_id}/notes", {"note": "Bonjour"}),
        (f"/parcours/{pathway_id}/suspendre", {}),
        ("/parcours/nouveau", {"first_name": "A", "last_name": "B", "consent": "oui"}),
    ):
        response = await client.post(url, data=data)
        assert response.status_code == 403 and "CSRF" in response.text, url
        response = await client.post(url, data={**data, "csrf": "faux"})
        assert response.status_code == 403, url
    assert parcours.pathway(pathway_id).status == "active" and parcours.open_tasks(pathway_id)[0].status == "open"


# --- Pathway page -----------------------------------------------------------------------------


async def test_pathway_page_and_referent_actions(web: Web) -> None:
    parcours = web.parcours
    definition_id = parcours.publish(ALL_FIELDS)
    first = await parcours.start(definition_id)
    actor = parcours.service.actor_for(CAMILLE)
    await parcours.service.complete_task(
        task_id=parcours.open_task(first, "saisie").id,
        actor=actor,
        outcome="valide",
        data={"synthese": "ok", "mobile": "non"},
    )
    client = await web.signed_in(CAMILLE)

    status, html = await page(client, f"/parcours/{first}")
    assert status == 200
    assert "Alex TEST" in html and "Consentement au partage" in html
    timeline = html.split('id="timeline"')[1].split("</ol>")[0]
    assert (
        timeline.index("Saisie complète")
        < timeline.index("Bilan facultatif")
        < timeline.index("Sortie : Fin du parcours")
    )
    assert 'class="is-done"' in timeline and 'class="is-open"' in timeline and 'class="is-upcoming"' in timeline
    assert "Saisie validée" in timeline and "À venir" in timeline
    group = html.split('id="follow-up"')[1].split("</ul>")[0]
    assert "Département de la Haute-Savoie" in group and "Référente" in group and "depuis le" in group
    audit = html.split('id="audit"')[1].split("</table>")[0]
    for label in ("Parcours démarré", "Tâche terminée"):
        assert label in audit
    assert "Camille Martin" in audit and "issue : Saisie validée" in audit
    assert "Consultations des données personnelles (1)" in html, "views of personal data are listed apart"

    # a note shared with the group; an empty one is refused next to the field
    response = await post(client, f"/parcours/{first}/notes", {"note": " "})
    assert response.status_code == 422 and '<p id="note-text-error" class="fr-error-text">' in response.text
    response = await post(client, f"/parcours/{first}/notes", {"note": "Rendez-vous fixé au 12 mars."})
    assert response.status_code == 303
    _, html = await page(client, f"/parcours/{first}")
    assert (
        "Note partagée avec le groupe de suivi." in html
        and "Rendez-vous fixé au 12 mars." in html.split('id="notes"')[1]
    )

    # add a module: its task opens, its partner joins the follow-up group; an unknown one is refused
    response = await post(client, f"/parcours/{first}/module", {"module": "inconnu"})
    assert response.status_code == 422 and "Module inconnu" in response.text and 'role="alert"' in response.text
    response = await post(client, f"/parcours/{first}/module", {"module": "mobilite", "motif": "Pas de permis"})
    assert response.status_code == 303
    _, html = await page(client, f"/parcours/{first}")
    assert "Module « Module mobilité » ajouté." in html and "Module : Module mobilité" in html
    assert "Association Mobilité Pays d&#39;Annecy" in html.split('id="follow-up"')[1].split("</ul>")[0]
    assert "Pas de permis" in html

    # pause, then resume
    response = await post(client, f"/parcours/{first}/suspendre", {"motif": "Hospitalisation"})
    assert response.status_code == 303 and parcours.pathway(first).status == "paused"
    _, html = await page(client, f"/parcours/{first}")
    assert "Parcours suspendu" in html and f'action="/parcours/{first}/reprendre"' in html
    response = await post(client, f"/parcours/{first}/reprendre", {})
    assert response.status_code == 303 and parcours.pathway(first).status == "active"

    # skip the optional step: a reason is required; skipping it leads to the end
    bilan = parcours.open_task(first, "bilan")
    response = await post(client, f"/parcours/{first}/passer", {"tache": bilan.id, "motif": ""})
    assert response.status_code == 422 and '<p id="skip-reason-error" class="fr-error-text">' in response.text
    response = await post(client, f"/parcours/{first}/passer", {"tache": bilan.id, "motif": "Bilan fait ailleurs"})
    assert response.status_code == 303 and response.headers["location"] == "/parcours"
    assert parcours.pathway(first).status == "closed"

    # close another pathway with an exit reason; the list of followed pathways and its filters
    second = await parcours.start(definition_id)
    _, html = await page(client, "/parcours?statut=open")
    assert (
        f'href="/parcours/{second}"' in html and f'href="/parcours/{first}"' not in html and "Saisie complète" in html
    )
    # the closed pathway stays listed for its referent, under "Clos"
    _, html = await page(client, "/parcours?statut=closed")
    assert f'href="/parcours/{first}"' in html and f'href="/parcours/{second}"' not in html
    await parcours.service.pause(pathway_id=second, actor=actor)
    _, html = await page(client, "/parcours?statut=active")
    assert f'href="/parcours/{second}"' not in html
    _, html = await page(client, "/parcours?statut=paused&bassin=annecien")
    assert f'href="/parcours/{second}"' in html
    response = await post(client, f"/parcours/{second}/clore", {"sortie": ""})
    assert response.status_code == 422 and '<p id="close-reason-error" class="fr-error-text">' in response.text
    response = await post(client, f"/parcours/{second}/clore", {"sortie": "formation", "note": "Entrée en CAP"})
    assert response.status_code == 303
    pathway = parcours.pathway(second)
    assert pathway.status == "closed" and pathway.exit_reason == "formation"
    _, html = await page(client, "/parcours")
    assert "Parcours clos : Formation qualifiante." in html


async def test_actions_are_refused_to_partners_who_are_not_referent(web: Web) -> None:
    parcours = web.parcours
    pathway_id = await parcours.start(parcours.publish(ALL_FIELDS))
    await parcours.service.reassign_task(
        task_id=parcours.open_task(pathway_id, "saisie").id,
        actor=parcours.service.actor_for(CAMILLE),
        organisation_id="ft_annecy",
        reason="x",
    )
    julien = await web.signed_in(JULIEN)
    status, html = await page(julien, f"/parcours/{pathway_id}")
    assert status == 200 and "Actions de la structure référente" not in html
    assert "N° de sécurité sociale" in html
    response = await post(julien, f"/parcours/{pathway_id}/suspendre", {"motif": "essai"})
    assert response.status_code == 403 and "Seule la structure référente" in response.text
    assert parcours.pathway(pathway_id).status == "active"


# --- Start a pathway --------------------------------------------------------------------------


async def test_start_pathway_validates_inline_then_starts(web: Web) -> None:
    parcours = web.parcours
    client = await web.signed_in(CAMILLE)
    status, html = await page(client, "/parcours/nouveau")
    assert status == 200 and 'aria-current="page">Démarrer un parcours' in html
    assert (
        '<option value="rsa_socio_pro"' in html
        and "La personne accepte que son parcours soit partagé avec le groupe de suivi" in html
    )
    assert 'hx-get="/parcours/nouveau/definitions"' in html
    # changing the basin reloads the definition select (htmx), keeping the choice when possible
    response = await client.get(
        "/parcours/nouveau/definitions",
        params={"basin": "chablais", "definition": "rsa_socio_pro"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and response.text.lstrip().startswith("{") is False
    assert 'id="definition-group"' in response.text and '<option value="rsa_socio_pro" selected>' in response.text

    person = {
        "first_name": "Jeanne",
        "last_name": "Durand",
        "birth_date": "1985-05-12",
        "email": "jeanne@example.org",
        "phone": "06 12 34 56 78",
        "france_travail_id": "1234567A",
        "basin": "annecien",
        "definition": "rsa_socio_pro",
    }
    response = await post(client, "/parcours/nouveau", {**person, "nir": "1850578006048 00"})
    assert response.status_code == 422
    html = response.text
    assert '<p id="nir-error" class="fr-error-text">numéro de sécurité sociale (NIR) invalide</p>' in html
    assert (
        '<p id="consent-error" class="fr-error-text">'
        "le consentement de la personne au partage avec le groupe de suivi est requis</p>" in html
    )
    assert (
        'aria-describedby="nir-hint nir-error"' in html
        and 'value="Jeanne"' in html
        and '<option value="rsa_socio_pro" selected>' in html
    )
    response = await post(
        client,
        "/parcours/nouveau",
        {**person, "email": "pas-un-mail", "nir": valid_nir(), "consent": "oui", "definition": ""},
    )
    assert response.status_code == 422
    assert '<p id="email-error" class="fr-error-text">adresse e-mail invalide' in response.text
    assert '<p id="definition-error" class="fr-error-text">Choisissez le type de parcours.</p>' in response.text
    assert q.count_pathways(parcours.engine) == 0

    response = await post(client, "/parcours/nouveau", {**person, "nir": valid_nir(), "consent": "oui"})
    assert response.status_code == 303, response.text
    pathway_id = response.headers["location"].removeprefix("/parcours/")
    pathway = parcours.pathway(pathway_id)
    assert (
        pathway.referent_org == "departement74"
        and pathway.basin_id == "annecien"
        and pathway.definition_id == "rsa_socio_pro"
    )
    status, html = await page(client, response.headers["location"])
    assert status == 200 and f"Parcours {pathway_id} démarré" in html and "Jeanne DURAND" in html
    assert valid_nir() in html, "the Département reads the NIR"
    assert "Décider l&#39;orientation" in html


async def test_trial_copies_are_never_offered_to_caseworkers(web: Web) -> None:
    from tests.flows import timed

    web.parcours.publish(timed(definition_id="atelier_essai"))
    web.parcours.publish(timed(definition_id="atelier"))
    async with await web.signed_in("camille.martin@example.org") as client:
        select = await client.get("/parcours/nouveau/definitions", params={"basin": "annecien"})
    assert select.status_code == 200
    assert 'value="atelier"' in select.text and "atelier_essai" not in select.text
