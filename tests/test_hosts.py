"""The directory of host structures for immersions (issue 11 §1): kept by the partners who
prospect employers, searched by basin and trade, completed by the host itself through a one-time
link that expires, serves once, is audited and reaches nothing else."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any

from sqlalchemy import update
from sqlmodel import func, select

from services import links
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import Web, csrf_of, eventually

JULIEN = "julien.roux@example.org"  # France Travail Annecy: keeps the directory
INES = "ines.garnier@example.org"  # CAF: searches it, does not keep it
SIRET = "73282932000074"  # a valid SIRET (check digit included)
OTHER_SIRET = "35600000000048"


def host_form(csrf: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "basin": "annecien",
        "name": "Boulangerie du Lac",
        "siret": "732 829 320 00074",
        "address": "12 rue du Pâquier, 74000 Annecy",
        "sector": "Artisanat alimentaire",
        "trades": "Boulanger\nPâtissière",
        "accessibility": "Plain-pied ; bus ligne 2",
        "contact_name": "Mme Perrier",
        "contact_email": "contact@boulangerie-du-lac.example.org",
        "tutor_1_name": "Jean Perrier",
        "tutor_1_job": "Artisan boulanger",
    }
    form.update(changes)
    return form


def count(engine: Any, model: Any) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def audit_actions(engine: Any) -> list[str]:
    with session_scope(engine) as session:
        return [row.action for row in session.exec(select(models.AuditEvent).order_by(models.AuditEvent.at))]


async def add_bakery(client: Any) -> str:
    csrf = csrf_of((await client.get("/accueil/nouvelle")).text)
    response = await client.post("/accueil/nouvelle", data=host_form(csrf))
    assert response.status_code == 303, response.text
    return str(response.headers["location"]).rsplit("/", 1)[1]


async def test_a_partner_adds_a_host_and_every_partner_finds_it_by_basin_and_trade(web: Web) -> None:
    engine = web.parcours.engine
    julien = await web.signed_in(JULIEN)
    csrf = csrf_of((await julien.get("/accueil/nouvelle")).text)

    # Each wrong field is named, in French, and nothing is stored.
    refused = await julien.post(
        "/accueil/nouvelle", data=host_form(csrf, siret="73282932000075", contact_email="pas-une-adresse", trades="")
    )
    assert refused.status_code == 422
    assert "SIRET invalide (73282932000075)" in refused.text
    assert "E-mail du contact : adresse e-mail invalide" in refused.text
    assert "Métiers proposés : au moins un métier." in refused.text
    assert 'value="Boulangerie du Lac"' in refused.text  # what was typed is kept
    assert count(engine, models.Host) == 0

    host_id = await add_bakery(julien)
    page = await julien.get(f"/accueil/{host_id}")
    assert page.status_code == 200 and "73282932000074" in page.text and "Jean Perrier (Artisan boulanger)" in page.text
    # The same SIRET again in the basin (a retried form) adds nothing.
    again = await julien.post("/accueil/nouvelle", data=host_form(csrf))
    assert again.status_code == 409 and "déjà dans l'annuaire de ce bassin" in unescape(again.text)
    assert count(engine, models.Host) == 1

    # An offer, sent twice with the same form token, is added once.
    offer_form = {"csrf": csrf, "request_id": "offre-boulanger-1", "trade": "Aide-boulanger", "places": "2"}
    start = (q.now() + timedelta(days=10)).date().isoformat()
    end = (q.now() + timedelta(days=24)).date().isoformat()
    for _ in range(2):
        added = await julien.post(f"/accueil/{host_id}/offres", data={**offer_form, "start_1": start, "end_1": end})
        assert added.status_code == 303
    assert count(engine, models.ImmersionOffer) == 1

    # The CAF does not keep the directory, but finds the host by basin and trade, any accents.
    ines = await web.signed_in(INES)
    forbidden = await ines.post(
        "/accueil/nouvelle", data=host_form(csrf_of((await ines.get("/accueil")).text), siret=OTHER_SIRET)
    )
    assert forbidden.status_code == 403 and "ne peut pas le modifier" in forbidden.text
    assert count(engine, models.Host) == 1
    found = await ines.get("/accueil", params={"bassin": "annecien", "metier": "PATISSIERE"})
    assert "Boulangerie du Lac" in found.text and "1 structure(s)" in found.text
    by_offer = await ines.get("/accueil", params={"bassin": "annecien", "metier": "aide-boulanger"})
    assert "Boulangerie du Lac" in by_offer.text and "Aide-boulanger (2 places)" in by_offer.text
    elsewhere = await ines.get("/accueil", params={"bassin": "chablais", "metier": "boulanger"})
    assert "0 structure(s)" in elsewhere.text and "Boulangerie du Lac" not in elsewhere.text
    unrelated = await ines.get("/accueil", params={"bassin": "annecien", "metier": "maçon"})
    assert "0 structure(s)" in unrelated.text

    # The API answers the same directory and the same refusals.
    api = await web.api(INES)
    listed = (await api.get("/api/hosts", params={"basin": "annecien", "trade": "boulanger"})).json()
    assert [item["siret"] for item in listed["items"]] == [SIRET] and listed["items"][0]["offers"][0]["places"] == 2
    assert "search_text" not in listed["items"][0]
    assert {"host_added", "offer_added"} <= set(audit_actions(engine))


async def test_the_api_adds_offers_once_per_idempotency_key_and_names_bad_fields(web: Web) -> None:
    api = await web.api(JULIEN)
    body = {
        "basin": "genevois",
        "name": "Mairie de Saint-Julien",
        "siret": OTHER_SIRET,
        "address": "Place du Général",
        "sector": "Administration",
        "trades": ["Agent d'entretien des espaces verts"],
        "contact_name": "M. Roch",
        "contact_email": "rh@mairie-st-julien.example.org",
    }
    created = await api.post("/api/hosts", json=body)
    assert created.status_code == 201, created.text
    host_id = created.json()["id"]
    bad = await api.post("/api/hosts", json={**body, "siret": "123"})
    assert bad.status_code == 422 and "siret" in bad.json()["fields"]
    start = (q.now() + timedelta(days=3)).date().isoformat()
    past = (q.now() - timedelta(days=30)).date().isoformat()
    offer = {"trade": "Espaces verts", "places": 1, "periods": [{"start": start, "end": start}]}
    first = await api.post(f"/api/hosts/{host_id}/offers", json=offer, headers={"Idempotency-Key": "k-1"})
    second = await api.post(f"/api/hosts/{host_id}/offers", json=offer, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201 and first.json()["id"] == second.json()["id"]
    other = await api.post(
        f"/api/hosts/{host_id}/offers", json={**offer, "places": 3}, headers={"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 422 and "déjà servi pour une autre demande" in other.json()["detail"]
    old = await api.post(f"/api/hosts/{host_id}/offers", json={**offer, "periods": [{"start": past, "end": past}]})
    assert old.status_code == 422 and "déjà passée" in old.json()["detail"]
    assert count(web.parcours.engine, models.ImmersionOffer) == 1


async def test_the_host_completes_its_entry_once_through_its_link_which_reaches_nothing_else(web: Web) -> None:
    engine, mail = web.parcours.engine, web.parcours.mail
    julien = await web.signed_in(JULIEN)
    host_id = await add_bakery(julien)
    page = await julien.get(f"/accueil/{host_id}")
    invited = await julien.post(f"/accueil/{host_id}/lien", data={"csrf": csrf_of(page.text)})
    assert invited.status_code == 303
    shown = await julien.get(f"/accueil/{host_id}")
    assert "Lien envoyé à contact@boulangerie-du-lac.example.org" in shown.text
    message = await eventually(
        lambda: [m for m in mail.messages if "contact@boulangerie-du-lac.example.org" in str(m["To"])],
        what="host link e-mail",
    )
    path = re.search(r"/accueil/lien/[\w\-]+", message[-1].get_content())
    assert path
    link = path.group(0)

    async with web.client() as host:  # the employer: no account, no session
        opened = await host.get(link)
        assert opened.status_code == 200 and 'value="Boulangerie du Lac"' in opened.text
        csrf = csrf_of(opened.text)
        # A wrong entry is refused and the link stays usable.
        wrong = await host.post(link, data=host_form(csrf, contact_email="nope"))
        assert wrong.status_code == 422 and "adresse e-mail invalide" in wrong.text
        # The link reaches nothing else: no page, no API, no other host.
        assert (await host.get(f"/accueil/{host_id}")).status_code == 303  # to the sign-in page
        assert (await host.get("/accueil")).status_code == 303
        assert (await host.get("/api/hosts")).status_code == 401
        assert (await host.get(link.replace("/accueil/lien/", "/accueil/lien/x"))).status_code == 404
        done = await host.post(
            link, data=host_form(csrf, accessibility="Rampe d'accès ; parking PMR", trades="Boulanger\nPâtissier")
        )
        assert done.status_code == 200 and "votre fiche est enregistrée" in done.text
        # Replayed: refused, saying when it served.
        replayed = await host.post(link, data=host_form(csrf, name="Autre nom"))
        assert replayed.status_code == 409 and "Ce lien a déjà servi" in replayed.text
        assert (await host.get(link)).status_code == 409
    with session_scope(engine) as session:
        row = session.get(models.Host, host_id)
        assert row is not None and row.name == "Boulangerie du Lac" and row.trades == ["Boulanger", "Pâtissier"]
        assert row.accessibility == "Rampe d'accès ; parking PMR"
    actions = audit_actions(engine)
    assert actions.count("link_used") == 1 and actions.count("host_completed_by_link") == 1
    assert actions.count("link_opened") >= 1 and "host_link_created" in actions

    # An expired link is refused.
    invited = await julien.post(f"/accueil/{host_id}/lien", data={"csrf": csrf_of(page.text)})
    fresh = re.search(r"/accueil/lien/[\w\-]+", (await julien.get(f"/accueil/{host_id}")).text)
    assert fresh
    with session_scope(engine) as session:
        session.execute(
            update(models.AccessLink)
            .where(models.AccessLink.token_hash == links.digest(fresh.group(0).rsplit("/", 1)[1]))
            .values(expires_at=q.now() - timedelta(minutes=1))
        )
    async with web.client() as host:
        expired = await host.get(fresh.group(0))
        assert expired.status_code == 403 and "Ce lien a expiré" in expired.text
