"""Immersions (PMSMP, issue 11 §2): proposed by a prescriber, answered by the host through its
link, the convention signed by every party through their own link; each legal rule refused with
its French message; expired or replayed links refused; the host's, a party's and the tutor's
pages in chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from io import BytesIO
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import update
from sqlmodel import select

from definitions.durations import PARIS, is_working_day
from parcours.presenters import aware
from services import hosts, immersions, links
from services.errors import ServiceError
from services.immersions import Proposal
from store import models
from store import queries as q
from store.db import session_scope
from tests.browser import browser_page, served
from tests.conftest import Web, csrf_of, eventually
from tests.test_accessibility import axe_violations, report

CAMILLE = "camille.martin@example.org"  # departement74: referent and prescriber
JULIEN = "julien.roux@example.org"  # ft_annecy: keeps the host directory
INES = "ines.garnier@example.org"  # CAF: not a prescriber
ALEX = {"first_name": "Alex", "last_name": "Martin", "email": "alex.martin@example.org", "consent": True}
HOST_CONTACT = "rh@jardins-du-fier.example.org"
HOST_PART = {
    "tutor_name": "Jeanne Fier",
    "tutor_job": "Cheffe de culture",
    "tutor_email": "jeanne@jardins-du-fier.example.org",
    "place": "Route de Lovagny, 74000 Annecy",
    "schedule": "Du lundi au vendredi, 8 h – 12 h et 13 h – 16 h",
    "tasks": "Semis, récolte, préparation des paniers",
    "risk_prevention": "Gants et chaussures de sécurité fournis ; port de charges limité à 15 kg",
}


IMMERSION_FIRST = """
id: test_immersion
title: Immersion d'abord
status: active
basins: [all]
start: accueil
steps:
  - {kind: task, id: accueil, title: Accueil, role: referent, outcomes: [{id: fait, label: Fait, next: immersion}]}
  - kind: immersion
    id: immersion
    title: Immersion en entreprise
    role: referent
    deadline: 30 working days
    next_if_hiring: emploi
    next: bilan
  - {kind: task, id: bilan, title: Bilan, role: referent, outcomes: [{id: fait, label: Fait, next: reorientation}]}
  - {kind: end, id: emploi, title: Sortie vers l'emploi, exit_reason: emploi_durable}
  - {kind: end, id: reorientation, title: Réorientation, exit_reason: reorientation}
"""


def day(offset: int) -> str:
    return (q.now().date() + timedelta(days=offset)).isoformat()


async def setup(web: Web) -> tuple[str, str]:
    parcours = web.parcours
    parcours.publish(IMMERSION_FIRST)
    pathway_id = await parcours.service.start_pathway(
        definition_id="test_immersion",
        basin_id="annecien",
        referent_org="departement74",
        person=ALEX,
        actor=parcours.service.actor_for(CAMILLE),
    )
    host = hosts.add_host(
        parcours.engine,
        actor=parcours.service.actor_for(JULIEN),
        basin_id="annecien",
        entry=hosts.HostEntry(
            name="Jardins du Fier",
            siret="73282932000074",
            address="Route de Lovagny, Annecy",
            sector="Maraîchage",
            trades=["Maraîcher"],
            contact_name="M. Fier",
            contact_email=HOST_CONTACT,
        ),
    )
    return pathway_id, host.id


def links_to(web: Web, email: str, path: str) -> list[str]:
    found = []
    for message in web.parcours.mail.messages:
        if email in str(message["To"]):
            found += re.findall(rf"{path}[\w\-]+", message.get_content())
    return found


async def test_an_immersion_goes_from_proposal_through_the_host_s_link_to_every_signature(web: Web) -> None:
    engine = web.parcours.engine
    pathway_id, host_id = await setup(web)
    parcours = web.parcours
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "accueil").id,
        actor=parcours.service.actor_for(CAMILLE),
        outcome="fait",
        data={},
    )
    step_task = parcours.open_task(pathway_id, "immersion")  # the immersion step: a task of the prescriber
    camille = await web.signed_in(CAMILLE)
    page = (await camille.get(f"/parcours/{pathway_id}")).text
    assert "Proposer une immersion" in page and "Jardins du Fier" in page
    proposed = await camille.post(
        f"/parcours/{pathway_id}/immersions",
        data={
            "csrf": csrf_of(page),
            "host_id": host_id,
            "start_date": day(5),
            "end_date": day(18),
            "weekly_hours": "35",
            "objectives": ["decouvrir", "confirmer"],
        },
    )
    assert proposed.status_code == 303
    answer_link = (await eventually(lambda: links_to(web, HOST_CONTACT, "/immersion/reponse/"), what="host link"))[-1]

    async with web.client() as host:
        opened = await host.get(answer_link)
        assert opened.status_code == 200 and "Jardins du Fier" in opened.text and "Martin" not in opened.text
        csrf = csrf_of(opened.text)
        incomplete = await host.post(answer_link, data={"csrf": csrf, "reponse": "accepter", "tutor_name": "Jeanne"})
        assert incomplete.status_code == 422 and "Prévention des risques : à renseigner." in unescape(incomplete.text)
        accepted = await host.post(answer_link, data={"csrf": csrf, "reponse": "accepter", **HOST_PART})
        assert accepted.status_code == 200 and "Votre accord est enregistré" in unescape(accepted.text)
        replayed = await host.post(answer_link, data={"csrf": csrf, "reponse": "refuser"})
        assert replayed.status_code == 409
        # A link reaches nothing beyond its purpose: the host's answer link signs nothing.
        elsewhere = answer_link.replace("/immersion/reponse/", "/immersion/signature/")
        assert (await host.get(elsewhere)).status_code == 404

    # Each party gets its own link and sees exactly what it signs.
    signers = {"person": ALEX["email"], "host": HOST_CONTACT, "prescriber": CAMILLE}
    party_links = {
        party: (await eventually(lambda e=email: links_to(web, e, "/immersion/signature/"), what=f"{party} link"))[-1]
        for party, email in signers.items()
    }
    for number, (party, link) in enumerate(party_links.items(), start=1):
        async with web.client() as signer:
            shown = await signer.get(link)
            text = unescape(shown.text)
            assert "Jeanne Fier, Cheffe de culture" in text and "Gants et chaussures de sécurité" in text
            assert immersions.PARTIES[party] in text
            seen = re.search(r'name="seen_hash" value="(\w+)"', shown.text)
            assert seen
            form = {"csrf": csrf_of(shown.text), "seen_hash": seen.group(1), "signer_name": f"Signataire {party}"}
            unchecked = await signer.post(link, data=form)
            assert unchecked.status_code == 422 and "cochez" in unescape(unchecked.text)
            signed = await signer.post(link, data={**form, "accord": "oui"})
            assert signed.status_code == 200
            assert ("Toutes les parties ont signé" in unescape(signed.text)) == (number == len(party_links))
            assert (await signer.post(link, data={**form, "accord": "oui"})).status_code == 409
            # Signed, the party keeps reading the convention it signed (the PDF), and nothing more.
            kept = await signer.get(f"{link}/convention.pdf")
            assert kept.status_code == 200 and kept.headers["content-type"] == "application/pdf"

    row = immersions.of_pathway(engine, pathway_id)[0]
    assert row.status == "signed" and row.convention["tutor_email"] == HOST_PART["tutor_email"]
    pdf = await camille.get(f"/immersions/{row.id}/convention.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(pdf.content)).pages)
    for party in signers:
        assert f"{immersions.PARTIES[party]} : Signataire {party}" in text
    assert "convention signée par toutes les parties" in unescape((await camille.get(f"/parcours/{pathway_id}")).text)
    with session_scope(engine) as session:
        rows = session.exec(select(models.AuditEvent).where(models.AuditEvent.pathway_id == pathway_id))
        actions = [e.action for e in rows]
    assert actions.count("immersion_signed") == 3 and "immersion_convention_signed" in actions
    assert row.task_id == step_task.id

    # The tutor's reminders wait in the outbox for their working day, 9:00 in Paris: the mid-point
    # check and, on the immersion's last working day, the bilan.
    with session_scope(engine) as session:
        reminders = {
            n.kind: n
            for n in session.exec(select(models.Notification).where(models.Notification.pathway_id == pathway_id))
            if n.kind.startswith("immersion_")
        }
    assert set(reminders) == {"immersion_midpoint", "immersion_bilan"}
    for reminder in reminders.values():
        local = aware(reminder.next_attempt_at).astimezone(PARIS)  # type: ignore[arg-type]
        assert (local.hour, local.minute) == (9, 0) and is_working_day(local.date())
        assert reminder.recipients == [HOST_PART["tutor_email"]] and reminder.status == "pending"
    midpoint = aware(reminders["immersion_midpoint"].next_attempt_at).astimezone(PARIS).date()  # type: ignore[arg-type]
    last = aware(reminders["immersion_bilan"].next_attempt_at).astimezone(PARIS).date()  # type: ignore[arg-type]
    assert row.start_date < midpoint < last <= row.end_date
    assert not any(is_working_day(last + timedelta(days=i)) for i in range(1, (row.end_date - last).days + 1))
    assert "/immersion/bilan/" in reminders["immersion_bilan"].body
    # Once due, a worker's outbox relay sends it.
    with session_scope(engine) as session:
        session.execute(
            update(models.Notification)
            .where(models.Notification.key == reminders["immersion_midpoint"].key)
            .values(next_attempt_at=q.now())
        )
    await eventually(
        lambda: [
            m
            for m in web.parcours.mail.messages
            if "Point d'étape de l'immersion" in str(m["Subject"]) and HOST_PART["tutor_email"] in str(m["To"])
        ],
        what="mid-point reminder",
    )

    # The tutor's bilan, through its link: the hiring intention ends the step toward the job exit.
    tutor = HOST_PART["tutor_email"]
    bilan_link = (await eventually(lambda: links_to(web, tutor, "/immersion/bilan/"), what="tutor link"))[-1]
    async with web.client() as host:
        form = await host.get(bilan_link)
        assert form.status_code == 200 and "Savoir-être observés" in unescape(form.text)
        data = {
            "csrf": csrf_of(form.text),
            "objectives_met": ["decouvrir"],
            "skill.rigueur": "4",
            "skill.autonomie": "3",
            "comment": "Très bonne intégration.",
        }
        missing = await host.post(bilan_link, data=data)
        assert missing.status_code == 422 and "envisage d'embaucher" in unescape(missing.text)
        done = await host.post(bilan_link, data={**data, "hiring": "oui"})
        assert done.status_code == 200 and "intention d'embauche est transmise" in unescape(done.text)
        assert (await host.post(bilan_link, data={**data, "hiring": "non"})).status_code == 409
        given = await host.get(f"{bilan_link}/convention.pdf")
        assert "Bilan du tuteur" in "\n".join(p.extract_text() for p in PdfReader(BytesIO(given.content)).pages)
    closed = await eventually(
        lambda: parcours.pathway(pathway_id).status == "closed" and parcours.pathway(pathway_id), what="job exit"
    )
    assert closed.exit_reason == "emploi_durable"
    task = q.get_task(engine, task_id=step_task.id)
    assert task is not None and task.outcome == "embauche"
    pdf = await camille.get(f"/immersions/{row.id}/convention.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(pdf.content)).pages)
    assert "Bilan du tuteur" in text and "Intention d'embauche : oui" in text and "Rigueur : 4" in text
    # The person's export holds the immersion, its convention, signatures and the tutor's bilan.
    exported = await camille.get(f"/parcours/{pathway_id}/donnees-personne.json")
    immersion_export = exported.json()["pathways"][0]["immersions"][0]
    assert immersion_export["bilan"]["hiring"] is True and len(immersion_export["signatures"]) == 3
    # The tutor's grid joined the passport.
    passport_page = unescape((await camille.get(f"/parcours/{pathway_id}")).text).split('id="passeport"')[1]
    assert "Rigueur</th><td>4 – Maîtrisé</td>" in passport_page and "tuteur de la structure d'accueil" in passport_page


async def test_each_legal_rule_is_refused_with_its_message(web: Web) -> None:
    engine = web.parcours.engine
    pathway_id, host_id = await setup(web)
    camille, ines = web.parcours.service.actor_for(CAMILLE), web.parcours.service.actor_for(INES)
    user = q.get_user_by_email(engine, email=CAMILLE)
    assert user is not None

    def propose(actor_email: str, **changes: Any) -> immersions.Sent:
        from admin_ui.access import load_user

        viewer = load_user(engine, q.get_user_by_email(engine, email=actor_email).id)  # type: ignore[union-attr]
        values: dict[str, Any] = {
            "host_id": host_id,
            "start_date": day(3),
            "end_date": day(32),
            "weekly_hours": 35,
            "objectives": ["decouvrir"],
            **changes,
        }
        return immersions.propose(engine, viewer, pathway_id, Proposal(**values), public_url="http://x")

    # The CAF joins the follow-up group (a task reassigned to it), but may not prescribe.
    task = web.parcours.open_task(pathway_id, "accueil")
    await web.parcours.service.reassign_task(task_id=task.id, actor=camille, organisation_id="caf74", reason="Droits.")
    assert ines.organisation_id == "caf74"
    # The prescriber's organisation type (the CAF may not; the territory file may narrow the list).
    with pytest.raises(ServiceError, match="Règle du prescripteur"):
        propose(INES)
    # One month at most.
    with pytest.raises(ServiceError, match="Règle de durée : une immersion dure un mois au plus"):
        propose(CAMILLE, end_date=day(40))
    # Everyone signs before the start: no immersion starting today.
    with pytest.raises(ServiceError, match="Règle des signatures"):
        propose(CAMILLE, start_date=day(0), end_date=day(5))
    first = propose(CAMILLE).immersion  # 30 days
    renewal = propose(CAMILLE, start_date=day(33), end_date=day(62), renewal_of=first.id).immersion  # 30 more
    # Renewed once at most.
    with pytest.raises(ServiceError, match="Règle de renouvellement"):
        propose(CAMILLE, start_date=day(63), end_date=day(64), renewal_of=renewal.id)
    # Two months at most with the same host within twelve (60 days used, 5 more refused).
    with pytest.raises(ServiceError, match="Règle des deux mois"):
        propose(CAMILLE, start_date=day(70), end_date=day(74))
    # The territory file's list of prescribers is the rule's list.
    with session_scope(engine) as session:
        session.merge(models.Setting(key=q.IMMERSION_PRESCRIBERS, value='["france_travail"]'))
    with pytest.raises(ServiceError, match=r"Règle du prescripteur.*\(france_travail\)"):
        propose(CAMILLE, start_date=day(200), end_date=day(201))

    # A signature on or after the start date is refused, naming the rule; an expired link too.
    sent = immersions.answer(
        engine,
        _token_for(engine, first.id, immersions.ANSWER),
        accept=True,
        part=immersions.HostPart(**HOST_PART),
        public_url="http://x",
    )
    person_link = next(s.url.rsplit("/", 1)[1] for s in sent if s.party == "person")
    with session_scope(engine) as session:
        session.execute(
            update(models.Immersion).where(models.Immersion.id == first.id).values(start_date=q.now().date())
        )
    seen = immersions.text_hash(immersions.to_sign(engine, person_link).text)
    with pytest.raises(ServiceError, match="Règle des signatures : tous signent avant le début"):
        immersions.sign(engine, person_link, signer_name="Alex Martin", agreed=True, seen_hash=seen)
    host_link = next(s.url.rsplit("/", 1)[1] for s in sent if s.party == "host")
    with session_scope(engine) as session:
        session.execute(
            update(models.AccessLink)
            .where(models.AccessLink.token_hash == links.digest(host_link))
            .values(expires_at=q.now() - timedelta(seconds=1))
        )
    with pytest.raises(ServiceError, match="Ce lien a expiré"):
        immersions.to_sign(engine, host_link)


def _token_for(engine: Any, immersion_id: str, purpose: str) -> str:
    """A fresh link for a test to act through (the proposal's own is in an e-mail)."""
    with session_scope(engine) as session:
        session.execute(
            update(models.AccessLink).where(models.AccessLink.subject_id == immersion_id).values(used_at=q.now())
        )
        return links.create(
            session,
            purpose=purpose,
            subject_id=immersion_id,
            sent_to="x@example.org",
            created_by="test",
            valid_for=timedelta(days=1),
        )


async def test_the_host_s_and_a_party_s_pages_in_chromium(web: Web) -> None:
    engine = web.parcours.engine
    pathway_id, host_id = await setup(web)
    from admin_ui.access import load_user

    viewer = load_user(engine, q.get_user_by_email(engine, email=CAMILLE).id)  # type: ignore[union-attr]
    sent = immersions.propose(
        engine,
        viewer,
        pathway_id,
        Proposal(host_id=host_id, start_date=day(4), end_date=day(8), weekly_hours=20, objectives=["recrutement"]),
        public_url="",
    )
    found: dict[str, list[dict[str, Any]]] = {}
    async with served(web) as base, browser_page() as page:
        found[sent.url] = await axe_violations(page, base, sent.url)
        for name, value in HOST_PART.items():
            await page.fill(f"#{name}", value)
        await page.get_by_role("button", name="Accepter et compléter la convention").click()
        await page.get_by_text("Votre accord est enregistré").wait_for()
        person_link = (await eventually(lambda: links_to(web, ALEX["email"], "/immersion/signature/"), what="link"))[-1]
        found[person_link] = await axe_violations(page, base, person_link)
        await page.fill("#signer_name", "Alex Martin")
        await page.get_by_text("J'ai lu et j'accepte la convention").click()
        await page.get_by_role("button", name="Signer la convention").click()
        await page.get_by_text("Votre signature est enregistrée").wait_for()
        # The tutor's bilan page (the other parties' signatures taken as given here).
        with session_scope(engine) as session:
            session.execute(
                update(models.Immersion).where(models.Immersion.id == sent.immersion.id).values(status="signed")
            )
            token = links.create(
                session,
                purpose=immersions.BILAN,
                subject_id=sent.immersion.id,
                sent_to="t@example.org",
                created_by="test",
                valid_for=timedelta(days=1),
            )
        bilan_path = f"/immersion/bilan/{token}"
        found[bilan_path] = await axe_violations(page, base, bilan_path)
        await page.select_option("#skill-rigueur", "3")
        await page.get_by_text("Non", exact=True).click()
        await page.get_by_role("button", name="Enregistrer le bilan").click()
        await page.get_by_text("Merci, le bilan est enregistré").wait_for()
    found = {path: violations for path, violations in found.items() if violations}
    assert not found, "axe-core: serious or critical violations\n" + report(found)
