"""Identity and the web application's defences: sign-in written once (services.identity) with a
rate limit every UI process shares, revocable sessions and API tokens, one-time links without
account enumeration, configuration that fails closed, random user ids, the dev mail page for
administrators in dev mode only, security headers and a request size limit."""

from __future__ import annotations

import re
import time as real_time
import uuid
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlmodel import select

from definitions.territory import DEMO_TERRITORY, load_territory
from parcours.settings import ConfigError, Settings, load_settings
from services import identity
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import DEMO_PASSWORD, Parcours, Web, csrf_of, eventually

CAMILLE = "camille.martin@example.org"  # caseworker
THOMAS = "thomas.bernard@example.org"  # caseworker
SARAH = "sarah.benali@example.org"  # caseworker
ADMIN = "admin@example.org"
TEMPLATES = Path(__file__).resolve().parents[1] / "admin_ui" / "templates"


def app_for(parcours: Parcours, **settings: Any) -> Any:
    from admin_ui.app import create_app

    return create_app(parcours.engine, parcours.settings.model_copy(update=settings), service=parcours.service)


@pytest.fixture
async def site(parcours_without_worker: Parcours) -> AsyncIterator[Web]:
    """The web application without a worker: sign-in and pages that need no workflow."""
    yield Web(parcours=parcours_without_worker, app=app_for(parcours_without_worker))


def other_process(web: Web, **settings: Any) -> Web:
    """A second UI process on the same read model (its own memory, its own app)."""
    return Web(parcours=web.parcours, app=app_for(web.parcours, **settings))


async def sign_in_form(client: Any, email: str, password: str, **headers: str) -> httpx.Response:
    csrf = csrf_of((await client.get("/connexion")).text)
    response: httpx.Response = await client.post(
        "/connexion", data={"email": email, "password": password, "csrf": csrf}, headers=headers
    )
    return response


def links_to(parcours: Parcours, email: str) -> list[Message]:
    return [m for m in parcours.mail.messages if email in str(m["To"]) and "lien de connexion" in str(m["Subject"])]


async def ask_link(web: Web, email: str) -> httpx.Response:
    async with web.client() as client:
        csrf = csrf_of((await client.get("/connexion")).text)
        response: httpx.Response = await client.post("/connexion/lien", data={"email": email, "csrf": csrf})
        if response.status_code == 303:
            response.extensions["flash"] = (await client.get("/connexion")).text
        return response


# --- 1 + 3. Sign-in written once, its rate limit in the database -----------------------------


async def test_page_and_api_of_two_ui_processes_share_one_sign_in_limit(site: Web) -> None:
    """Broken against: the per-process RateLimiter in memory (each app counted alone)."""
    site.ensure_password(CAMILLE)
    other = other_process(site)
    async with site.client() as page:
        for _ in range(3):
            assert (await sign_in_form(page, CAMILLE, "pas le bon")).status_code == 401
    async with other.client() as api:
        for _ in range(2):
            wrong = await api.post("/api/auth/token", json={"email": CAMILLE, "password": "pas le bon"})
            assert wrong.status_code == 401 and wrong.json()["detail"] == "Adresse e-mail ou mot de passe incorrect."
        blocked = await api.post("/api/auth/token", json={"email": CAMILLE, "password": DEMO_PASSWORD})
        assert blocked.status_code == 429 and blocked.headers["retry-after"] == "900"
        assert "Trop de tentatives" in blocked.json()["detail"]
    async with site.client() as page:
        refused = await sign_in_form(page, CAMILLE, DEMO_PASSWORD)
        assert refused.status_code == 429 and "Trop de tentatives" in refused.text
    # Kept hashed: neither the address nor the e-mail is stored in the table.
    with session_scope(site.parcours.engine) as session:
        keys = [row.key for row in session.exec(select(models.SignInAttempt))]
    assert keys and all(CAMILLE not in key and "127.0.0.1" not in key for key in keys)


async def test_x_forwarded_for_is_ignored_unless_a_trusted_proxy_header_is_configured(site: Web) -> None:
    """Broken against: no PARCOURS_TRUSTED_PROXY_HEADER setting (the peer counted for every client)."""
    site.ensure_password(CAMILLE)
    async with site.client() as client:  # a client sending a new X-Forwarded-For each time
        for n in range(5):
            await sign_in_form(client, CAMILLE, "pas le bon", **{"X-Forwarded-For": f"203.0.113.{n}"})
        spoofed = await sign_in_form(client, CAMILLE, DEMO_PASSWORD, **{"X-Forwarded-For": "203.0.113.99"})
        assert spoofed.status_code == 429
    behind_proxy = other_process(site, trusted_proxy_header="X-Real-IP")
    async with behind_proxy.client() as client:
        for _ in range(5):
            await sign_in_form(client, THOMAS, "pas le bon", **{"X-Real-IP": "198.51.100.1"})
        assert (await sign_in_form(client, THOMAS, DEMO_PASSWORD, **{"X-Real-IP": "198.51.100.1"})).status_code == 429
        site.ensure_password(THOMAS)
        other_client = await sign_in_form(client, THOMAS, DEMO_PASSWORD, **{"X-Real-IP": "198.51.100.2"})
        assert other_client.status_code == 303
    assert identity.client_address("10.0.0.9", {"x-forwarded-for": "1.2.3.4, 10.0.0.1"}, None) == "10.0.0.9"
    assert identity.client_address("10.0.0.9", {"x-forwarded-for": "1.2.3.4, 10.0.0.1"}, "X-Forwarded-For") == (
        "10.0.0.1"
    )


# --- 2. Sessions and tokens can be revoked; sessions have an absolute lifetime ------------------


async def test_sign_out_ends_every_session_and_token_even_a_copied_cookie(site: Web) -> None:
    """Broken against: sign-out that only cleared this browser's cookie."""
    first, second, api = await site.signed_in(CAMILLE), await site.signed_in(CAMILLE), await site.api(CAMILLE)
    page = await first.get("/taches")
    assert page.status_code == 200
    copied = dict(first.cookies)
    assert (await first.post("/deconnexion", data={"csrf": csrf_of(page.text)})).status_code == 303
    thief = site.client()
    thief.cookies.update(copied)
    for client in (first, second, thief):
        response = await client.get("/taches")
        assert response.status_code == 303 and response.headers["location"].startswith("/connexion")
    assert (await api.get("/api/me")).status_code == 401
    again = await site.signed_in(CAMILLE)
    assert (await again.get("/taches")).status_code == 200
    for client in (first, second, thief, api, again):
        await client.aclose()


async def test_a_new_password_ends_sessions_and_tokens(site: Web) -> None:
    """`parcours users set-password` calls identity.set_password. Broken against: a password
    change that left the user's sessions and tokens working."""
    browser, api = await site.signed_in(CAMILLE), await site.api(CAMILLE)
    identity.set_password(site.parcours.engine, email=CAMILLE, password="un-tout-nouveau-mot-de-passe")
    assert (await browser.get("/taches")).status_code == 303
    assert (await api.get("/api/me")).status_code == 401
    for client in (browser, api):
        await client.aclose()


async def test_sessions_of_a_deactivated_user_stay_dead_after_reactivation(site: Web) -> None:
    """Broken against: sessions checked on `active` alone (reactivating revived them)."""
    browser, api = await site.signed_in(THOMAS), await site.api(THOMAS)
    thomas = q.get_user_by_email(site.parcours.engine, email=THOMAS)
    assert thomas is not None
    async with await site.signed_in(ADMIN) as admin:
        for active in ({}, {"active": "on"}):
            users = await admin.get("/admin/utilisateurs")
            changed = await admin.post(
                f"/admin/utilisateurs/{thomas.id}",
                data={"csrf": csrf_of(users.text), "role": "caseworker", "organisation": "departement74", **active},
            )
            assert changed.status_code == 303
    reactivated = q.get_user_by_email(site.parcours.engine, email=THOMAS)
    assert reactivated is not None and reactivated.active
    assert (await browser.get("/taches")).status_code == 303
    assert (await api.get("/api/me")).status_code == 401
    async with await site.signed_in(THOMAS) as fresh:
        assert (await fresh.get("/taches")).status_code == 200
    for client in (browser, api):
        await client.aclose()


async def test_a_session_ends_twelve_hours_after_sign_in_however_busy(
    site: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken against: the idle limit alone (a session used every few hours lived for ever)."""
    async with await site.signed_in(CAMILLE) as browser:
        monkeypatch.setattr(identity, "time", SimpleNamespace(time=lambda: real_time.time() + 12 * 3600 - 600))
        assert (await browser.get("/taches")).status_code == 200
        monkeypatch.setattr(identity, "time", SimpleNamespace(time=lambda: real_time.time() + 12 * 3600 + 60))
        expired = await browser.get("/taches")
        assert expired.status_code == 303 and expired.headers["location"].startswith("/connexion")


# --- 4. One-time links: rate-limited, sent in the background, no account enumeration -------------


async def test_known_and_unknown_addresses_get_the_same_answer_and_only_the_known_one_mail(site: Web) -> None:
    parcours = site.parcours
    unknown_address = f"inconnu-{uuid.uuid4().hex[:6]}@example.org"
    known, unknown = await ask_link(site, SARAH), await ask_link(site, unknown_address)
    assert (known.status_code, known.headers["location"]) == (unknown.status_code, unknown.headers["location"])
    assert known.content == unknown.content
    flash = "Si cette adresse correspond à un compte, un lien de connexion vient de lui être envoyé."
    assert flash in known.extensions["flash"] and flash in unknown.extensions["flash"]
    await eventually(lambda: links_to(parcours, SARAH), what="the known address's link")
    assert not [m for m in parcours.mail.messages if unknown_address in str(m["To"])]


async def test_an_unreachable_mail_server_gives_the_same_answer(parcours_without_worker: Parcours) -> None:
    """The e-mail goes in the background. Broken against: sending before answering (503 for a
    known address when SMTP is down: an account enumeration oracle)."""
    web = Web(parcours=parcours_without_worker, app=app_for(parcours_without_worker, smtp_port=9))
    known, unknown = await ask_link(web, SARAH), await ask_link(web, "personne@example.org")
    assert known.status_code == unknown.status_code == 303
    assert known.headers["location"] == unknown.headers["location"] == "/connexion"


async def test_link_requests_are_limited_per_address_and_per_client(site: Web) -> None:
    """Broken against: no limit (anyone could mail-bomb a colleague, or probe many addresses)."""
    parcours = site.parcours
    before = len(links_to(parcours, SARAH))  # the SMTP sink serves the whole session
    for _ in range(identity.LINK_REQUESTS_PER_ADDRESS):
        assert (await ask_link(site, SARAH)).status_code == 303
    refused = await ask_link(site, SARAH)
    assert refused.status_code == 429 and "Trop de demandes de lien" in refused.text
    expected = before + identity.LINK_REQUESTS_PER_ADDRESS
    await eventually(lambda: len(links_to(parcours, SARAH)) >= expected, what="links")
    assert len(links_to(parcours, SARAH)) == expected
    # The same client asking for many addresses (known or not) is stopped too.
    answers = [
        (await ask_link(site, f"sonde-{n}@example.org")).status_code for n in range(identity.LINK_REQUESTS_PER_CLIENT)
    ]
    assert answers.count(429) >= 1 and answers[0] == 303


# --- 5. Configuration fails closed; user ids are random -------------------------------------


def test_prod_needs_a_secret_of_32_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken against: any non-default secret accepted in prod."""
    for name in ("PARCOURS_UI_HOST", "PARCOURS_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARCOURS_MODE", "prod")
    monkeypatch.setenv("PARCOURS_SECRET_KEY", "x" * 31)
    with pytest.raises(ConfigError, match="PARCOURS_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("PARCOURS_SECRET_KEY", "x" * 32)
    assert load_settings().mode == "prod"


def test_dev_mode_listens_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken against: dev mode (default secret, dev mail page) reachable on 0.0.0.0."""
    monkeypatch.setenv("PARCOURS_MODE", "dev")
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        monkeypatch.setenv("PARCOURS_UI_HOST", host)
        with pytest.raises(ConfigError, match="PARCOURS_UI_HOST"):
            load_settings()
    for host in ("127.0.0.1", "localhost", "::1"):
        monkeypatch.setenv("PARCOURS_UI_HOST", host)
        assert load_settings().ui_host == host
    assert Settings(mode="prod", secret_key="s" * 40, ui_host="0.0.0.0").ui_host == "0.0.0.0"


def test_user_ids_are_random_and_kept_when_the_territory_is_reloaded(parcours_without_worker: Parcours) -> None:
    """Broken against: ids derived from the e-mail (uuid5), guessable by anyone knowing it."""
    engine = parcours_without_worker.engine
    with session_scope(engine) as session:
        users = {u.email: u.id for u in session.exec(select(models.User))}
    for email, user_id in users.items():
        assert re.fullmatch(r"u-[0-9a-f]{32}", user_id), user_id
        assert uuid.uuid5(uuid.NAMESPACE_URL, "parcours:user:" + email).hex[:12] not in user_id
    identity.set_password(engine, email=CAMILLE, password=DEMO_PASSWORD)
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    with session_scope(engine) as session:
        again = {u.email: u.id for u in session.exec(select(models.User))}
        camille = session.exec(select(models.User).where(models.User.email == CAMILLE)).one()
    assert again == users and camille.password_hash is not None


# --- 6. Captured e-mails: administrators, dev mode only -------------------------------------


async def test_captured_emails_are_for_administrators_in_dev_mode_only(site: Web) -> None:
    """Broken against: any signed-in user in dev, administrators in prod (one-time links inside)."""
    async with await site.signed_in(CAMILLE) as caseworker:
        assert (await caseworker.get("/dev/emails")).status_code == 403
    async with await site.signed_in(ADMIN) as admin:
        assert (await admin.get("/dev/emails")).status_code == 200
    prod = other_process(site, mode="prod", secret_key="p" * 40)
    https = httpx.ASGITransport(app=prod.app)
    async with httpx.AsyncClient(transport=https, base_url="https://parcours.test") as admin:  # secure cookie
        assert (await sign_in_form(admin, ADMIN, DEMO_PASSWORD)).status_code == 303
        assert (await admin.get("/dev/emails")).status_code == 404
        assert "E-mails capturés" not in (await admin.get("/admin")).text
    async with prod.client() as anonymous:
        assert (await anonymous.get("/dev/emails")).status_code == 404


# --- 7. Security headers, no inline script, a body size limit -------------------------------


async def test_every_response_carries_the_security_headers(site: Web) -> None:
    """Broken against: no headers (the pages could be framed, sniffed, leak their URL)."""
    async with await site.signed_in(CAMILLE) as client:
        responses = [
            await client.get("/connexion"),
            await client.get("/taches"),
            await client.get("/static/app/app.css"),
            await client.get("/page-inconnue"),
            await client.get("/api/me"),
            await site.client().get("/api/me"),
        ]
    for response in responses:
        policy = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy, response.url
        script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] in ("same-origin", "no-referrer", "strict-origin")
    nonces = {re.search(r"'nonce-([^']+)'", r.headers["content-security-policy"]).group(1) for r in responses}  # type: ignore[union-attr]
    assert len(nonces) == len(responses)  # one per request
    docs = await site.client().get("/docs")
    nonce = re.search(r"'nonce-([^']+)'", docs.headers["content-security-policy"])
    assert docs.status_code == 200 and nonce and f'<script nonce="{nonce.group(1)}">' in docs.text
    assert "<script>" not in docs.text


def test_templates_have_no_inline_script_or_event_handler() -> None:
    """Broken against: hx-on::before-swap (evaluated by htmx), onclick and javascript: links."""
    problems = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=", r"\bhx-on", r"javascript:"):
            for match in re.finditer(pattern, text, re.IGNORECASE):
                if "nonce=" not in match.group(0):
                    problems.append(f"{template.relative_to(TEMPLATES)}: {match.group(0)}")
    assert not problems, problems


async def test_request_bodies_over_one_mebibyte_are_refused(site: Web) -> None:
    """Broken against: no limit (any size read into memory)."""
    big = b"x" * (1024 * 1024 + 1)
    async with site.client() as client:
        declared = await client.post(
            "/connexion", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert declared.status_code == 413 and "trop volumineuse" in declared.text
        assert declared.headers["x-content-type-options"] == "nosniff"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(20):
                yield b"y" * 65536

        streamed = await client.post("/api/auth/token", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "trop volumineuse" in streamed.json()["detail"]
        small = await client.post("/api/auth/token", json={"email": CAMILLE, "password": "x"})
        assert small.status_code == 401
