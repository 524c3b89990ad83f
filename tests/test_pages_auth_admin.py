"""Signing in and out, and the administration pages, through the web application."""

from __future__ import annotations

import re

from sqlmodel import select

from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import DEMO_PASSWORD, Web, csrf_of, eventually

ADMIN = "admin@example.org"
CAMILLE = "camille.martin@example.org"


async def test_pages_need_a_signed_in_user_and_each_role_lands_on_its_home(web: Web) -> None:
    async with web.client() as anonymous:
        response = await anonymous.get("/admin")
        assert response.status_code == 303 and response.headers["location"] == "/connexion?suivant=/admin"
    for email, home in (
        (CAMILLE, "/taches"),
        ("lea.dupont@example.org", "/gto"),
        ("marc.girard@example.org", "/definitions"),
        (ADMIN, "/admin"),
    ):
        async with await web.signed_in(email) as client:
            assert (await client.get("/")).headers["location"] == home


async def test_wrong_password_is_refused_then_rate_limited(web: Web) -> None:
    web.ensure_password(CAMILLE)
    async with web.client() as client:
        csrf = csrf_of((await client.get("/connexion")).text)
        for _ in range(5):
            refused = await client.post("/connexion", data={"email": CAMILLE, "password": "pas le bon", "csrf": csrf})
            assert refused.status_code == 401 and "incorrect" in refused.text
        blocked = await client.post("/connexion", data={"email": CAMILLE, "password": DEMO_PASSWORD, "csrf": csrf})
        assert blocked.status_code == 429 and "Trop de tentatives" in blocked.text


async def test_forms_without_csrf_token_are_refused(web: Web) -> None:
    web.ensure_password(CAMILLE)
    async with web.client() as client:
        await client.get("/connexion")
        response = await client.post("/connexion", data={"email": CAMILLE, "password": DEMO_PASSWORD})
        assert response.status_code == 403 and "CSRF" in response.text


async def test_one_time_link_by_email_signs_in_once(web: Web) -> None:
    mail = web.parcours.mail
    async with web.client() as client:
        csrf = csrf_of((await client.get("/connexion")).text)
        response = await client.post("/connexion/lien", data={"email": "sarah.benali@example.org", "csrf": csrf})
        assert response.status_code == 303
        unknown = await client.post("/connexion/lien", data={"email": "inconnu@example.org", "csrf": csrf})
        assert unknown.status_code == 303  # same answer: no account enumeration
        message = await eventually(
            lambda: [
                m
                for m in mail.messages
                if "sarah.benali@example.org" in m["To"] and "lien de connexion" in m["Subject"]
            ],
            what="link e-mail",
        )
        link = re.search(r"/connexion/lien/[\w\-]+", message[-1].get_content())
        assert link
        signed = await client.get(link.group(0))
        assert signed.status_code == 303 and signed.headers["location"] == "/taches"
        inbox = await client.get("/taches")
        assert inbox.status_code == 200 and "<h1>Tâches de Mission Locale du bassin annécien</h1>" in inbox.text
        assert "Sarah Benali · Mission Locale du bassin annécien" in inbox.text  # signed in as Sarah
    async with web.client() as other:
        reused = await other.get(link.group(0))
        assert reused.headers["location"] == "/connexion"
        assert "invalide, expiré ou déjà utilisé" in (await other.get("/connexion")).text


async def test_sign_out_ends_the_session(web: Web) -> None:
    async with await web.signed_in(ADMIN) as client:
        page = await client.get("/admin")
        assert page.status_code == 200
        out = await client.post("/deconnexion", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert (await client.get("/admin")).status_code == 303


async def test_admin_sees_the_territory_and_changes_a_role(web: Web) -> None:
    async with await web.signed_in(ADMIN) as client:
        page = await client.get("/admin")
        assert page.status_code == 200 and "Chablais" in page.text and "Mission Locale du Genevois" in page.text
        users = await client.get("/admin/utilisateurs?organisation=departement74")
        assert "camille.martin@example.org" in users.text and "julien.roux" not in users.text
        camille = q.get_user_by_email(web.parcours.engine, email=CAMILLE)
        assert camille is not None
        response = await client.post(
            f"/admin/utilisateurs/{camille.id}",
            data={
                "csrf": csrf_of(users.text),
                "role": "gto_lead",
                "organisation": "departement74",
                "basin": "chablais",
                "active": "1",
            },
        )
        assert response.status_code == 303
        changed = q.get_user_by_email(web.parcours.engine, email=CAMILLE)
        assert changed is not None and changed.role == "gto_lead" and changed.basin_id == "chablais"
        with session_scope(web.parcours.engine) as session:
            assert (
                session.exec(select(models.AuditEvent).where(models.AuditEvent.action == "user_changed")).first()
                is not None
            )


async def test_territory_import_valid_and_invalid(web: Web) -> None:
    valid = """
name: Territoire d'essai
direction_email: direction@essai.example.org
basins: [{id: vallee, name: Vallée, gto_email: gto@essai.example.org}]
organisations: [{id: asso_vallee, name: Association de la vallée, type: association, basins: [vallee], email: a@essai.example.org}]
users: [{email: nouveau@example.org, name: Nouveau Compte, organisation: asso_vallee, role: caseworker}]
"""
    invalid = valid.replace("basins: [vallee]", "basins: [montagne]")
    async with await web.signed_in(ADMIN) as client:
        csrf = csrf_of((await client.get("/admin")).text)
        refused = await client.post(
            "/admin/territoire", data={"csrf": csrf}, files={"file": ("t.yaml", invalid.encode())}
        )
        assert refused.status_code == 303
        page = await client.get("/admin")
        assert "Import refusé" in page.text and "unknown basin" in page.text and "montagne" in page.text
        assert q.get_basin(web.parcours.engine, basin_id="vallee") is None  # nothing half-written
        await client.post("/admin/territoire", data={"csrf": csrf}, files={"file": ("t.yaml", valid.encode())})
        assert (
            "Territoire d&#39;essai" in (await client.get("/admin")).text
            or "Territoire d'essai" in (await client.get("/admin")).text
        )
        assert q.get_user_by_email(web.parcours.engine, email="nouveau@example.org") is not None


async def test_only_admins_reach_administration(web: Web) -> None:
    async with await web.signed_in(CAMILLE) as client:
        denied = await client.get("/admin")
        assert denied.status_code == 403 and "Accès réservé aux administrateurs" in denied.text


async def test_captured_emails_page_in_dev_mode(web: Web) -> None:
    with session_scope(web.parcours.engine) as session:
        session.add(
            models.CapturedEmail(
                received_at=q.now(),
                mail_from="x@example.org",
                recipients=["y@example.org"],
                subject="[Parcours] Essai de capture",
                body="Bonjour",
            )
        )
    async with await web.signed_in(ADMIN) as client:
        page = await client.get("/dev/emails")
        assert page.status_code == 200 and "Essai de capture" in page.text
    async with await web.signed_in(CAMILLE) as client:  # one-time links are in there: admins only
        assert (await client.get("/dev/emails")).status_code == 403
