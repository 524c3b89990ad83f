"""Regressions a user would notice, each proved against the behaviour it guards: e-mails that
stop (or never go twice), who may read a pathway and which of its fields, accounts switched off,
forms without their CSRF token, retention, escalations reaching the right GTO, expiries, the
stuck rule and the start page's basin filter. What must NOT happen is checked against a control
that does happen (a control pathway's e-mail, an allowed reader, a link still valid)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time as real_time
import uuid
from datetime import timedelta
from email.message import EmailMessage, Message
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import itsdangerous.timed
import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, select
from stdnum.fr import nir as stdnum_nir
from temporalio.testing import ActivityEnvironment

from activities.outbox import OutboxRelay
from activities.pathway_activities import PathwayActivities
from definitions.durations import add_working_days
from definitions.territory import DEMO_TERRITORY, load_territory
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import DEMO_PASSWORD, Parcours, Web, csrf_of, eventually
from tests.flows import fast, flow
from workflows.contract import CommitBatch, Notification, PathwayRow, ProjectionBatch

CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent, reads NIRs)
THOMAS = "thomas.bernard@example.org"  # caseworker, departement74
JULIEN = "julien.roux@example.org"  # caseworker, ft_annecy (France Travail)
SARAH = "sarah.benali@example.org"  # caseworker, ml_annecy (Mission Locale)
LUCAS = "lucas.perrin@example.org"  # caseworker, mobilite_annecy (association)
LEA = "lea.dupont@example.org"  # gto_lead, basin annecien
MARC = "marc.girard@example.org"  # designer
ADMIN = "admin@example.org"  # admin

TERRITORY = load_territory(DEMO_TERRITORY)
GTO_MAILBOX = {b.id: b.gto_email for b in TERRITORY.basins}
GTO_LEAD = {u.basin: u.email for u in TERRITORY.users if u.role == "gto_lead" and u.basin}
ROOT = Path(__file__).resolve().parents[1]


def valid_nir(body: str = "2940375114005") -> str:
    """A NIR python-stdnum accepts: a 13-digit body and its key (97 - body mod 97)."""
    number = body + f"{97 - int(body) % 97:02d}"
    assert stdnum_nir.validate(number) == number
    return number


NIR = valid_nir()


def envelope(message: Message) -> set[str]:
    """Who the SMTP server was asked to deliver to (the envelope, not the To: header)."""
    return {r.strip() for r in str(message["X-Envelope-To"]).split(",")}


async def mail_with_key(parcours: Parcours, pathway_id: str, key: str, timeout: float = 20.0) -> Message:
    def find() -> Message | None:
        return next((m for m in parcours.mail.about(pathway_id) if str(m["X-Parcours-Key"]) == key), None)

    found = await eventually(find, timeout=timeout, what=f"e-mail {key}")
    assert found is not None
    return found


def read_model_snapshot(parcours: Parcours) -> dict[str, list[str]]:
    """Every row of every table, as text: what a refused request must leave untouched."""
    snapshot: dict[str, list[str]] = {}
    with parcours.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            rows = connection.execute(table.select()).all()
            snapshot[table.name] = sorted(repr(tuple(row)) for row in rows)
    return snapshot


# --- 1. A task completed while its pathway goes on gets no more reminders --------------------

TWO_TASKS = """
id: test_deux_taches
title: Parcours en deux tâches
status: active
basins: [all]
start: premiere
escalation:
  - {to: gto, after: PT0.5S}
  - {to: spie_direction, after: PT0.5S}
steps:
  - kind: task
    id: premiere
    title: Première tâche
    role: partner:france_travail
    deadline: PT4S
    reminders: [{before: PT2S}, {after: PT0.5S}]
    outcomes: [{id: fait, label: Fait, next: seconde}]
  - kind: task
    id: seconde
    title: Seconde tâche
    role: referent
    deadline: PT1H
    outcomes: [{id: fait, label: Fait, next: fin}]
  - {kind: end, id: fin, title: Fin, exit_reason: emploi_durable}
"""


async def test_a_task_completed_while_its_pathway_goes_on_gets_no_more_reminders(parcours: Parcours) -> None:
    parcours.publish(TWO_TASKS)
    done_id = await parcours.start("test_deux_taches")
    first = parcours.open_task(done_id, "premiere")
    # Completed long before its first reminder (2 s after the start).
    await parcours.service.complete_task(
        task_id=first.id, actor=parcours.service.actor_for(JULIEN), outcome="fait", data={}
    )
    second = parcours.open_task(done_id, "seconde")
    control_id = await parcours.start("test_deux_taches")
    control_first = parcours.open_task(control_id, "premiere")

    # The control, started after, goes through its whole chain on its first task...
    await mail_with_key(parcours, control_id, f"{control_first.id}:g0:escalated:2")
    control_kinds = {k.split(":")[2] for k in parcours.mail.keys(control_id) if k.startswith(f"{control_first.id}:")}
    assert control_kinds == {"task_assigned", "reminder", "overdue", "escalated"}
    # ...while the completed first task only ever got its assignment, and the pathway went on.
    await mail_with_key(parcours, done_id, f"{second.id}:g0:task_assigned:0")
    assert [k for k in parcours.mail.keys(done_id) if k.startswith(f"{first.id}:")] == [
        f"{first.id}:g0:task_assigned:0"
    ]
    assert q.list_escalations(parcours.engine, pathway_id=done_id, status=None) == []
    assert parcours.pathway(done_id).status == "active"
    assert [t.step_id for t in parcours.open_tasks(done_id)] == ["seconde"]


# --- 2. The same commit, the same notification: one e-mail -----------------------------------


async def test_the_same_commit_or_notification_twice_sends_one_email(parcours_without_worker: Parcours) -> None:
    parcours = parcours_without_worker
    activities = PathwayActivities(parcours.engine, parcours.settings)
    environment = ActivityEnvironment()
    pathway_id = "P-IDEM" + uuid.uuid4().hex[:6].upper()
    now = q.now()
    row = PathwayRow(
        id=pathway_id,
        definition_id="rsa_socio_pro",
        definition_version=1,
        basin_id="annecien",
        referent_org="departement74",
        person_ref="personne-idem",
        status="active",
        current_steps=["accueil"],
        sla="on_time",
        stuck_since=None,
        started_at=now,
        updated_at=now,
        last_progress_at=now,
        closed_at=None,
        exit_reason=None,
        revision=1,
        organisations=["departement74"],
    )

    def notification(kind: Any) -> Notification:
        return Notification(
            key=f"{pathway_id}-1:g0:{kind}:0",
            kind=kind,
            pathway_id=pathway_id,
            definition_title="Parcours RSA",
            item_id=f"{pathway_id}-1",
            step_title="Accueil",
            organisation_id="departement74",
            basin_id="annecien",
        )

    assigned, reminder = notification("task_assigned"), notification("reminder")
    batch = CommitBatch(projection=ProjectionBatch(pathway=row), notifications=[assigned])
    assert await environment.run(activities.commit, batch) == []
    assert await environment.run(activities.commit, batch) == []  # a retried commit
    await environment.run(activities.send_notification, reminder)
    await environment.run(activities.send_notification, reminder)  # a retried send
    relay = OutboxRelay(parcours.engine, parcours.settings)  # a worker's relay, here without its worker
    while await relay.deliver_due():
        pass
    assert await environment.run(activities.commit, batch) == []  # a commit retried after the relay sent
    await environment.run(activities.send_notification, assigned)  # already sent by the relay
    while await relay.deliver_due():
        pass

    # The SMTP sink records a message before it answers 250: every send above has landed.
    assert sorted(parcours.mail.keys(pathway_id)) == sorted([assigned.key, reminder.key])
    for message in parcours.mail.about(pathway_id):
        assert envelope(message) == {"insertion@departement74.example.org"}


# --- 3. An organisation that left the follow-up group no longer reads the pathway -------------


async def test_an_organisation_that_left_the_follow_up_group_can_no_longer_read_the_pathway(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    accueil = parcours.open_task(pathway_id, "accueil").id
    await parcours.service.reassign_task(
        task_id=accueil,
        actor=parcours.service.actor_for(CAMILLE),
        organisation_id="ml_annecy",
        reason="Public jeune : la Mission Locale suit.",
    )
    sarah_api, sarah_browser = await web.api(SARAH), await web.signed_in(SARAH)
    assert (await sarah_api.get(f"/api/pathways/{pathway_id}")).status_code == 200
    assert (await sarah_browser.get(f"/parcours/{pathway_id}")).status_code == 200

    # The Mission Locale hands its only task over to France Travail: it leaves the group.
    await parcours.service.reassign_task(
        task_id=accueil,
        actor=parcours.service.actor_for(SARAH),
        organisation_id="ft_annecy",
        reason="Inscription à France Travail.",
    )
    refused = await sarah_api.get(f"/api/pathways/{pathway_id}")
    assert refused.status_code == 403 and "groupe de suivi" in refused.json()["detail"]
    page = await sarah_browser.get(f"/parcours/{pathway_id}")
    assert page.status_code == 403 and "ne fait pas (ou plus) partie du groupe de suivi" in page.text
    assert "Alex" not in page.text

    # France Travail, now holding the task, and the referent (who stays) read it.
    julien, camille = await web.api(JULIEN), await web.api(CAMILLE)
    assert (await julien.get(f"/api/pathways/{pathway_id}")).status_code == 200
    detail = await camille.get(f"/api/pathways/{pathway_id}")
    assert detail.status_code == 200
    until = {m["organisation_id"]: m["until"] for m in detail.json()["follow_up"]}
    assert until["ml_annecy"] is not None
    assert until["departement74"] is None and until["ft_annecy"] is None

    # Given the task back, the Mission Locale rejoins the group, and France Travail leaves it.
    await parcours.service.reassign_task(
        task_id=accueil,
        actor=parcours.service.actor_for(JULIEN),
        organisation_id="ml_annecy",
        reason="Finalement suivi par la Mission Locale.",
    )
    assert (await sarah_api.get(f"/api/pathways/{pathway_id}")).status_code == 200
    assert (await sarah_browser.get(f"/parcours/{pathway_id}")).status_code == 200
    assert (await julien.get(f"/api/pathways/{pathway_id}")).status_code == 403
    for client in (sarah_api, sarah_browser, julien, camille):
        await client.aclose()


# --- 4. The NIR is masked for organisations that do not need it ------------------------------


async def test_the_nir_is_masked_for_mission_locale_and_associations_not_for_the_departement(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    camille_actor = parcours.service.actor_for(CAMILLE)
    pathway_id = await parcours.service.start_pathway(
        definition_id="test_flow",
        basin_id="annecien",
        referent_org="departement74",
        person={"first_name": "Inès", "last_name": "Morel", "nir": NIR, "consent": True},
        actor=camille_actor,
    )
    # The Mission Locale holds the first task, an association the mobility module.
    await parcours.service.reassign_task(
        task_id=parcours.open_task(pathway_id, "accueil").id,
        actor=camille_actor,
        organisation_id="ml_annecy",
        reason="Public jeune.",
    )
    await parcours.service.add_module(pathway_id=pathway_id, actor=camille_actor, module_id="mobilite")
    assert parcours.open_task(pathway_id, "mobilite_diag").organisation_id == "mobilite_annecy"

    # The Département reads the NIR, through the API and on the page...
    async with await web.api(CAMILLE) as api:
        person = (await api.get(f"/api/pathways/{pathway_id}")).json()["person"]
        assert person["nir"] == NIR
    async with await web.signed_in(CAMILLE) as browser:
        page = await browser.get(f"/parcours/{pathway_id}")
        assert page.status_code == 200 and NIR in page.text
    # ...the Mission Locale and the association see it masked (the same person, the same page).
    for email in (SARAH, LUCAS):
        async with await web.api(email) as api:
            response = await api.get(f"/api/pathways/{pathway_id}")
            assert response.status_code == 200, (email, response.text)
            person = response.json()["person"]
            assert person["first_name"] == "Inès" and person["nir"], email
            assert NIR[1:13] not in person["nir"].replace(" ", "") and person["nir"].endswith(NIR[-2:]), email
        async with await web.signed_in(email) as browser:
            page = await browser.get(f"/parcours/{pathway_id}")
            assert page.status_code == 200 and "Inès" in page.text, email
            assert "N° de sécurité sociale" in page.text and person["nir"] in page.text, email
            assert NIR[1:13] not in re.sub(r"\s", "", page.text), email


# --- 5. A deactivated user loses their session and token and cannot sign in ------------------


def link_emails(parcours: Parcours, email: str) -> list[Message]:
    return [m for m in parcours.mail.messages if email in str(m["To"]) and "lien de connexion" in str(m["Subject"])]


async def ask_for_link(web: Web, email: str) -> None:
    async with web.client() as client:
        csrf = csrf_of((await client.get("/connexion")).text)
        response = await client.post("/connexion/lien", data={"email": email, "csrf": csrf})
        assert response.status_code == 303


async def test_a_deactivated_user_is_signed_out_at_once_and_cannot_sign_in_again(web: Web) -> None:
    parcours = web.parcours
    browser, api = await web.signed_in(THOMAS), await web.api(THOMAS)
    assert (await browser.get("/taches")).status_code == 200
    assert (await api.get("/api/me")).json()["email"] == THOMAS
    # A one-time link asked for while the account was active.
    await ask_for_link(web, THOMAS)
    sent = await eventually(lambda: link_emails(parcours, THOMAS), what="link e-mail")
    link = re.search(r"/connexion/lien/[\w\-]+", cast(EmailMessage, sent[-1]).get_content())
    assert link

    # The administrator unticks "actif" on the users page.
    thomas = q.get_user_by_email(parcours.engine, email=THOMAS)
    assert thomas is not None
    async with await web.signed_in(ADMIN) as admin:
        users = await admin.get("/admin/utilisateurs", params={"organisation": "departement74"})
        assert f'action="/admin/utilisateurs/{thomas.id}"' in users.text
        changed = await admin.post(
            f"/admin/utilisateurs/{thomas.id}",
            data={"csrf": csrf_of(users.text), "role": "caseworker", "organisation": "departement74"},
        )
        assert changed.status_code == 303
    updated = q.get_user_by_email(parcours.engine, email=THOMAS)
    assert updated is not None and updated.active is False

    # The open session and the API token stop working at the next request.
    page = await browser.get("/taches")
    assert page.status_code == 303 and page.headers["location"].startswith("/connexion")
    assert (await api.get("/api/me")).status_code == 401
    # Neither a password nor the link signs them in again.
    async with web.client() as client:
        csrf = csrf_of((await client.get("/connexion")).text)
        refused = await client.post("/connexion", data={"email": THOMAS, "password": DEMO_PASSWORD, "csrf": csrf})
        assert refused.status_code == 401 and "incorrect" in refused.text
        assert (await client.get("/taches")).status_code == 303
        used = await client.get(link.group(0))
        assert used.status_code == 303 and used.headers["location"] == "/connexion"
        assert (await client.get("/taches")).status_code == 303
    token = await web.client().post("/api/auth/token", json={"email": THOMAS, "password": DEMO_PASSWORD})
    assert token.status_code == 401
    # No new link is e-mailed to them (a colleague asking just after gets hers).
    before = len(link_emails(parcours, THOMAS))
    await ask_for_link(web, THOMAS)
    await ask_for_link(web, CAMILLE)
    await eventually(lambda: link_emails(parcours, CAMILLE), what="the colleague's link e-mail")
    assert len(link_emails(parcours, THOMAS)) == before
    for client in (browser, api):
        await client.aclose()


# --- 6. Every state-changing form is refused without its CSRF token --------------------------

CSRF_EXEMPT = {
    "/api/": "the JSON API: bearer tokens, no cookie to ride on (with the session cookie, the same "
    "CSRF check applies: see test_api.test_session_cookie_needs_csrf_for_changes)",
}


def post_routes(app: Any) -> list[str]:
    """Every POST route of the app, included routers too (FastAPI may nest them)."""
    found: list[str] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            original = getattr(route, "original_router", None)
            if original is not None:
                walk(original.routes, prefix + route.include_context.prefix)
            elif "POST" in (getattr(route, "methods", None) or set()):
                found.append(prefix + route.path)

    walk(app.routes, "")
    return sorted(set(found))


async def test_every_state_changing_form_is_refused_without_its_csrf_token(web: Web) -> None:
    parcours = web.parcours
    pathway_id = await parcours.start("rsa_socio_pro")
    task_id = parcours.open_tasks(pathway_id)[0].id
    thomas = q.get_user_by_email(parcours.engine, email=THOMAS)
    assert thomas is not None
    ids = {
        "task_id": task_id,
        "pathway_id": pathway_id,
        "escalation_id": f"{task_id}-g0-n1",
        "definition_id": "rsa_socio_pro",
        "version": "1",
        "user_id": thomas.id,
        "migration_id": "migration-inconnue",
        "host_id": "hote-inconnu",
        "offer_id": "offre-inconnue",
        "token": "jeton-inconnu",
        "organisation_id": "departement74",
        "session_id": "rencontre-inconnue",
    }
    yaml_text = (ROOT / "definitions/catalog/rsa_socio_pro.yaml").read_text(encoding="utf-8")
    # Each form: who may post it (None: before signing in) and what it sends.
    forms: dict[str, tuple[str | None, dict[str, Any]]] = {
        "/connexion": (None, {"email": CAMILLE, "password": DEMO_PASSWORD}),
        "/connexion/lien": (None, {"email": CAMILLE}),
        "/deconnexion": (CAMILLE, {}),
        "/taches/{task_id}": (CAMILLE, {"outcome": "orientee", "champ.type_orientation": "sociale"}),
        "/taches/{task_id}/reattribuer": (CAMILLE, {"organisation": "caf74", "motif": "x"}),
        "/taches/{task_id}/note": (CAMILLE, {"note": "Bonjour"}),
        "/parcours/nouveau": (
            CAMILLE,
            {"first_name": "A", "last_name": "B", "consent": "oui", "basin": "annecien", "definition": "rsa_socio_pro"},
        ),
        "/parcours/{pathway_id}/module": (CAMILLE, {"module": "mobilite"}),
        "/parcours/{pathway_id}/passer": (CAMILLE, {"task": task_id, "motif": "x"}),
        "/parcours/{pathway_id}/suspendre": (CAMILLE, {"motif": "x"}),
        "/parcours/{pathway_id}/reprendre": (CAMILLE, {}),
        "/parcours/{pathway_id}/clore": (CAMILLE, {"exit_reason": "demenagement", "note": "x"}),
        "/parcours/{pathway_id}/notes": (CAMILLE, {"note": "Bonjour"}),
        "/gto/escalades/{escalation_id}": (LEA, {"action": "unblock", "note": "x"}),
        "/definitions/valider": (MARC, {"source": yaml_text}),
        "/definitions/nouvelle": (MARC, {"source": yaml_text.replace("id: rsa_socio_pro", "id: rsa_copie")}),
        "/definitions/{definition_id}/v/{version}/statut": (MARC, {"status": "retired"}),
        "/definitions/{definition_id}/v/{version}/essai": (MARC, {"basin": "annecien"}),
        "/definitions/{definition_id}/migrations/apercu": (MARC, {"to_version": "1"}),
        "/definitions/{definition_id}/migrations": (MARC, {"to_version": "1"}),
        "/migrations/{migration_id}/confirmer": (ADMIN, {}),
        "/admin/territoire": (ADMIN, {}),
        "/admin/incidents/{pathway_id}/relancer": (ADMIN, {}),
        "/admin/utilisateurs/{user_id}": (ADMIN, {"role": "admin", "organisation": "spie74", "active": "oui"}),
        "/admin/utilisateurs": (
            ADMIN,
            {"email": "csrf@example.org", "name": "C", "role": "admin", "organisation": "spie74", "active": "1"},
        ),
        "/accueil/nouvelle": (JULIEN, {"basin": "annecien", "name": "Hôte", "siret": "73282932000074"}),
        "/accueil/{host_id}": (JULIEN, {"name": "Hôte"}),
        "/accueil/{host_id}/offres": (JULIEN, {"trade": "Vente", "places": "1"}),
        "/accueil/{host_id}/lien": (JULIEN, {}),
        "/accueil/offres/{offer_id}/cloturer": (JULIEN, {}),
        "/accueil/lien/{token}": (None, {"name": "Hôte"}),
        "/parcours/{pathway_id}/passeport/consentement": (CAMILLE, {"accord": "oui"}),
        "/parcours/{pathway_id}/espace-personne": (CAMILLE, {}),
        "/parcours/{pathway_id}/immersions": (CAMILLE, {"host_id": "hote-inconnu"}),
        "/mon-espace/lien/{token}": (None, {}),
        "/mon-espace/accords/passeport": (None, {}),
        "/mon-espace/fermer": (None, {}),
        "/immersion/reponse/{token}": (None, {"reponse": "refuser"}),
        "/immersion/signature/{token}": (None, {"signer_name": "X", "accord": "oui"}),
        "/immersion/bilan/{token}": (None, {"hiring": "oui"}),
        "/definitions/{definition_id}/essaimage": (ADMIN, {"version": "1", "promote": "oui"}),
        "/partenaires/{organisation_id}": (CAMILLE, {"offer": "x"}),
        "/rencontres/nouvelle": (LEA, {"kind": "gto", "title": "GTO", "basin": "annecien", "capacity": "9"}),
        "/rencontres/{session_id}/inscription": (CAMILLE, {}),
        "/rencontres/{session_id}/desinscription": (CAMILLE, {}),
        "/rencontres/{session_id}/invitation": (LEA, {"email": "rh@example.org"}),
        "/rencontres/{session_id}/annulation": (LEA, {}),
        "/rencontres/{session_id}/modifier": (LEA, {"kind": "gto", "title": "Autre", "capacity": "9"}),
        "/rencontres/{session_id}/presences": (LEA, {"present": "x"}),
        "/rencontres/lien/{token}": (None, {"name": "Anne", "organisation": "Boulangerie"}),
    }
    routes = post_routes(web.app)
    assert "/connexion" in routes and "/parcours/nouveau" in routes, routes  # the walk found the pages
    forgotten = [r for r in routes if r not in forms and not any(r.startswith(p) for p in CSRF_EXEMPT)]
    assert not forgotten, f"POST routes neither checked for CSRF here nor listed as exempt: {forgotten}"

    clients: dict[str | None, Any] = {}
    for email in {who for who, _ in forms.values()}:
        if email is None:
            client = web.client()
            await client.get("/connexion")  # a session with its CSRF token, not sent below
        else:
            client = await web.signed_in(email)
        clients[email] = client

    for route, (who, data) in forms.items():
        url = route.format(**ids)
        before, mails = read_model_snapshot(parcours), len(parcours.mail.messages)
        for token in (None, "faux"):
            sent = data if token is None else {**data, "csrf": token}
            if route == "/admin/territoire":
                files = {"file": ("territoire.yaml", DEMO_TERRITORY.read_bytes(), "application/yaml")}
                response = await clients[who].post(url, data=sent, files=files)
            else:
                response = await clients[who].post(url, data=sent)
            assert response.status_code == 403, (route, token, response.status_code)
            assert "CSRF" in response.text, (route, token)
        assert read_model_snapshot(parcours) == before, f"{route}: refused, yet something was written"
        assert len(parcours.mail.messages) == mails, f"{route}: refused, yet an e-mail went out"

    # Refused sign-in and sign-out changed no session either.
    assert (await clients[None].get("/taches")).status_code == 303
    assert (await clients[CAMILLE].get("/taches")).status_code == 200
    for client in clients.values():
        await client.aclose()


# --- 7. Retention erases a person's data, keeps the counts and the audit ----------------------


async def test_retention_apply_erases_answers_notes_and_contacts_and_keeps_counts_and_audit(
    parcours: Parcours, tmp_path: Path
) -> None:
    parcours.publish(flow())
    camille = parcours.service.actor_for(CAMILLE)
    pathway_id = await parcours.service.start_pathway(
        definition_id="test_flow",
        basin_id="annecien",
        referent_org="departement74",
        person={
            "first_name": "Inès",
            "last_name": "Morel",
            "birth_date": "1994-03-12",
            "email": "ines.morel@example.net",
            "phone": "06 12 34 56 78",
            "nir": NIR,
            "france_travail_id": "1234567A",
            "consent": True,
        },
        actor=camille,
    )
    q.save_note(parcours.engine, text="Hébergée chez sa sœur.", author_user_id=camille.user_id, pathway_id=pathway_id)
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "accueil").id,
        actor=camille,
        outcome="fait",
        data={"besoin": "social", "commentaire": "Dettes de loyer, suivi CCAS."},
    )
    pathway = parcours.pathway(pathway_id)
    assert pathway.status == "closed"  # the social branch ends the pathway
    person_id = pathway.person_id

    def rows(model: Any) -> list[Any]:
        with session_scope(parcours.engine) as session:
            return list(session.exec(select(model).where(model.pathway_id == pathway_id)))

    assert rows(models.Submission) and rows(models.Note)  # there is something to erase
    tasks, audit = len(rows(models.Task)), {a.id for a in rows(models.AuditEvent)}
    # Closed 731 days ago: past the Département's 730-day retention.
    with parcours.engine.begin() as connection:
        connection.execute(
            text("UPDATE pathway SET closed_at = :at WHERE id = :id"),
            {"at": q.now() - timedelta(days=731), "id": pathway_id},
        )

    env = {k: v for k, v in os.environ.items() if not k.startswith("PARCOURS_")}
    env.update(PARCOURS_DATABASE_URL=str(parcours.settings.database_url), PARCOURS_DATA_DIR=str(tmp_path))
    command = [str(Path(sys.executable).parent / "parcours"), "retention", "--apply", "--json"]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {
        "expired": 1,
        "anonymised": 1,
        "registrations": 0,
        "registrations_anonymised": 0,
    }

    with session_scope(parcours.engine) as session:
        person = session.get(models.Person, person_id)
        assert person is not None and person.anonymised_at is not None
        erased = (person.birth_date, person.email, person.phone, person.nir, person.france_travail_id)
        assert (person.first_name, person.last_name, *erased) == ("Personne", "anonymisée", *[None] * 5)
    assert rows(models.Submission) == [] and rows(models.Note) == []
    # The anonymous counts and the audit stay.
    assert parcours.pathway(pathway_id) is not None and len(rows(models.Task)) == tasks
    after = rows(models.AuditEvent)
    assert audit <= {a.id for a in after}
    assert [a.action for a in after if a.id not in audit] == ["person_anonymised"]


# --- 8. Escalations reach the GTO of the pathway's own basin ----------------------------------


@pytest.mark.parametrize("basin", sorted(GTO_MAILBOX))
async def test_escalations_reach_the_gto_of_the_pathway_s_own_basin(parcours: Parcours, basin: str) -> None:
    parcours.publish(fast("test_bassin", level2="PT1H"))
    pathway_id = await parcours.start("test_bassin", basin=basin)
    task = parcours.open_task(pathway_id, "tache")
    message = await mail_with_key(parcours, pathway_id, f"{task.id}:g0:escalated:1")

    recipients = envelope(message)
    assert {GTO_MAILBOX[basin], GTO_LEAD[basin]} <= recipients
    others = {GTO_MAILBOX[b] for b in GTO_MAILBOX if b != basin} | {GTO_LEAD[b] for b in GTO_LEAD if b != basin}
    assert not recipients & others, recipients & others
    escalation = await eventually(
        lambda: q.list_escalations(parcours.engine, pathway_id=pathway_id, status="open"), what="open escalation"
    )
    assert [(e.basin_id, e.level, e.to) for e in escalation] == [(basin, 1, "gto")]


# --- 9. Expiries, the open-redirect guard, the stuck rule --------------------------------------


def clock_moved(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Signed cookies and API tokens (itsdangerous) read their age against a clock moved on."""
    monkeypatch.setattr(itsdangerous.timed, "time", SimpleNamespace(time=lambda: real_time.time() + seconds))


async def test_an_expired_one_time_link_is_refused(web: Web) -> None:
    from admin_ui.security import create_login_token

    sarah = q.get_user_by_email(web.parcours.engine, email=SARAH)
    assert sarah is not None
    expired, valid = (create_login_token(web.parcours.engine, user_id=sarah.id) for _ in range(2))
    # Sixteen minutes later, for the first one (links last 15 minutes).
    with session_scope(web.parcours.engine) as session:
        row = session.get(models.LoginToken, hashlib.sha256(expired.encode()).hexdigest())
        assert row is not None
        row.created_at, row.expires_at = q.now() - timedelta(minutes=16), q.now() - timedelta(minutes=1)
        session.add(row)
    async with web.client() as client:
        refused = await client.get(f"/connexion/lien/{expired}")
        assert refused.status_code == 303 and refused.headers["location"] == "/connexion"
        assert "invalide, expiré ou déjà utilisé" in (await client.get("/connexion")).text
        assert (await client.get("/taches")).status_code == 303
        accepted = await client.get(f"/connexion/lien/{valid}")
        assert accepted.headers["location"] == "/taches"
        assert (await client.get("/taches")).status_code == 200


async def test_a_session_idle_longer_than_its_lifetime_is_refused(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh, stale = await web.signed_in(CAMILLE), await web.signed_in(CAMILLE)
    clock_moved(monkeypatch, 8 * 3600 - 600)  # 7 h 50: still signed in
    assert (await fresh.get("/taches")).status_code == 200
    clock_moved(monkeypatch, 8 * 3600 + 60)  # 8 h 01 after signing in
    expired = await stale.get("/taches")
    assert expired.status_code == 303 and expired.headers["location"].startswith("/connexion")
    for client in (fresh, stale):
        await client.aclose()


async def test_an_api_token_older_than_its_lifetime_is_refused(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await web.api(CAMILLE) as api:
        clock_moved(monkeypatch, 12 * 3600 - 60)
        assert (await api.get("/api/me")).status_code == 200
        clock_moved(monkeypatch, 12 * 3600 + 60)
        refused = await api.get("/api/me")
        assert refused.status_code == 401 and refused.json()["detail"]


@pytest.mark.parametrize(
    "target",
    ["https://evil.example", "//evil.example", "/\\evil.example", "https:/evil.example", "javascript:alert(1)"],
)
async def test_sign_in_never_redirects_off_site(web: Web, target: str) -> None:
    web.ensure_password(CAMILLE)
    async with web.client() as client:
        for name in ("suivant", "next"):  # `suivant` is the app's; `next` must not be honoured either
            page = await client.get("/connexion", params={name: target})
            assert page.status_code == 200 and "evil.example" not in page.text and "javascript:" not in page.text
        response = await client.post(
            "/connexion",
            data={"email": CAMILLE, "password": DEMO_PASSWORD, "csrf": csrf_of(page.text), "suivant": target},
        )
    assert response.status_code == 303 and response.headers["location"] == "/taches"
    location = httpx.URL("http://parcours.test/taches").join(response.headers["location"])
    assert location.host == "parcours.test"


async def test_a_local_next_page_is_kept_after_sign_in(web: Web) -> None:
    web.ensure_password(CAMILLE)
    async with web.client() as client:
        page = await client.get("/connexion", params={"suivant": "/parcours"})
        response = await client.post(
            "/connexion",
            data={"email": CAMILLE, "password": DEMO_PASSWORD, "csrf": csrf_of(page.text), "suivant": "/parcours"},
        )
    assert response.status_code == 303 and response.headers["location"] == "/parcours"


async def test_no_progress_for_ten_working_days_makes_a_pathway_stuck_nine_does_not(web: Web) -> None:
    parcours = web.parcours
    ten, nine = await parcours.start("rsa_socio_pro"), await parcours.start("rsa_socio_pro")
    now = q.now()
    last_progress = {
        ten: add_working_days(now, -10) - timedelta(hours=1),
        nine: add_working_days(now, -9) - timedelta(hours=1),
    }
    with parcours.engine.begin() as connection:
        for pathway_id, at in last_progress.items():
            connection.execute(
                text("UPDATE pathway SET last_progress_at = :at WHERE id = :id"), {"at": at, "id": pathway_id}
            )
    async with await web.api(LEA) as api:
        listed = (await api.get("/api/pathways", params={"stuck": "true"})).json()["items"]
        assert [p["id"] for p in listed if p["id"] in (ten, nine)] == [ten]
    async with await web.signed_in(LEA) as browser:
        dashboard = (await browser.get("/gto")).text
        assert f'id="parcours-{ten}"' in dashboard and f'id="parcours-{nine}"' not in dashboard


# --- 10. The start page: choosing a basin filters the definitions offered ---------------------


async def test_choosing_a_basin_filters_the_definitions_offered(web: Web) -> None:
    async with await web.signed_in(CAMILLE) as client:
        # Without JavaScript: the page with the basin in its query.
        annecien = (await client.get("/parcours/nouveau", params={"basin": "annecien"})).text
        chablais = (await client.get("/parcours/nouveau", params={"basin": "chablais"})).text
        assert '<option value="annecien" selected>' in annecien and 'value="deld_immersion"' in annecien
        assert '<option value="chablais" selected>' in chablais and 'value="deld_immersion"' not in chablais
        assert 'value="rsa_socio_pro"' in chablais

        # With htmx: the request the basin select itself makes, under the name it sends.
        select = re.search(r'<select[^>]*\bid="basin"[^>]*>', annecien)
        assert select
        name = re.search(r'\bname="([^"]+)"', select.group(0))
        hx_get = re.search(r'\bhx-get="([^"]+)"', select.group(0))
        assert name and hx_get
        headers = {"HX-Request": "true"}
        for basin, offered in (("chablais", False), ("genevois", True)):
            partial = await client.get(hx_get.group(1), params={name.group(1): basin}, headers=headers)
            assert partial.status_code == 200 and 'id="definition-group"' in partial.text
            assert "<html" not in partial.text  # the fragment only
            assert ('value="deld_immersion"' in partial.text) is offered, basin
            assert 'value="rsa_socio_pro"' in partial.text
