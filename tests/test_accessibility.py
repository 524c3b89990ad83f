"""Accessibility: axe-core (npm `axe-core`, injected by Playwright into Debian's chromium) finds no
serious or critical violation on the main pages of each role: sign-in, a caseworker's inbox, task
and pathway, the GTO dashboard (with an escalated pathway) and an escalation, the designer's
definitions list and new-definition form, the host directory and the host's own page (opened
from its one-time link, then filled in and saved), a pathway's evaluation, the direction's view and the partner directory."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services import evaluation_facts, exchanges, hosts
from store import queries as q
from tests.browser import browser_page, served, sign_in
from tests.conftest import Web, eventually
from tests.flows import timed

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


async def axe_violations(page: Any, base: str, path: str) -> list[dict[str, Any]]:
    """The page's serious and critical axe-core violations, once it has settled. axe is evaluated
    through the DevTools protocol, which the page's Content-Security-Policy does not apply to."""
    response = await page.goto(f"{base}{path}")
    assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
    assert page.url == f"{base}{path}", f"{path}: ended on {page.url}"
    await page.wait_for_load_state("networkidle")
    # Definition diagrams (the GTO heat map) are checked as drawn by ELK, not as their fallback list.
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.parcours-elk')].every((c) => c.dataset.drawn === 'done')"
    )
    await page.evaluate(AXE.read_text())
    results = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [v for v in results["violations"] if v.get("impact") in BLOCKING]


def report(found: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for path, violations in found.items():
        for v in violations:
            targets = [json.dumps(node["target"], ensure_ascii=False) for node in v["nodes"]]
            lines.append(f"{path}: [{v['impact']}] {v['id']} — {v['help']} ({v['helpUrl']})")
            lines.extend(f"    {target}" for target in targets[:10])
    return "\n".join(lines)


async def test_main_pages_have_no_serious_accessibility_violation(web: Web) -> None:
    assert AXE.exists(), f"{AXE} missing: run `npm ci --ignore-scripts` (make setup does)"
    web.parcours.publish(
        timed(deadline="PT1S", reminder_before="PT1S", reminder_after="PT1H", level1="PT1S", level2="PT1H")
    )
    escalated = await web.parcours.start("test_timed")
    pathway_id = await web.parcours.start("rsa_socio_pro")
    task = web.parcours.open_task(pathway_id, "orientation")
    escalations = await eventually(
        lambda: q.list_escalations(web.parcours.engine, pathway_id=escalated), what="escalation"
    )
    julien = web.parcours.service.actor_for("julien.roux@example.org")
    host = hosts.add_host(
        web.parcours.engine,
        actor=julien,
        basin_id="annecien",
        entry=hosts.HostEntry(
            name="Jardins du Fier",
            siret="73282932000074",
            address="Route de Lovagny, 74000 Annecy",
            sector="Maraîchage",
            trades=["Maraîcher"],
            contact_name="M. Fier",
            contact_email="contact@jardins-du-fier.example.org",
        ),
    )
    invitation = hosts.invite_host(web.parcours.engine, actor=julien, host_id=host.id, public_url="http://x")
    link = invitation.url.removeprefix("http://x")
    lea = q.get_user_by_email(web.parcours.engine, email="lea.dupont@example.org")
    assert lea is not None
    meeting = exchanges.create(
        web.parcours.engine,
        lea,
        exchanges.SessionEntry(
            kind="employeurs",
            title="Petit-déjeuner employeurs",
            basin_id="annecien",
            day=(q.now().date() + timedelta(days=9)).isoformat(),
            start="08:30",
            end="10:00",
            place="Rumilly",
            capacity=20,
        ),
    )
    employer_link = exchanges.invite_employer(
        web.parcours.engine, lea, meeting.id, "rh@boulangerie.example.org", public_url="http://x"
    ).url.removeprefix("http://x")
    evaluation_facts.refresh(web.parcours.engine, now=q.now())  # the evaluation page's figures
    found: dict[str, list[dict[str, Any]]] = {}

    async def check(path: str) -> None:
        found[path] = await axe_violations(page, base, path)
        if path == "/gto":  # the dashboard is full: the escalated pathway is listed
            assert await page.get_by_text(escalated).count() >= 1, "the escalated pathway is not on /gto"
            assert await page.locator(".parcours-elk svg .elk-node[data-heat]").count() >= 1, "no heat map drawn"

    async with served(web) as base, browser_page() as page:
        await check("/connexion")
        # The host's own page, without an account, in chromium: checked, then filled in and saved.
        await check(link)
        await page.fill("#accessibility", "Plain-pied, bus ligne 6")
        await page.get_by_role("button", name="Enregistrer la fiche").click()
        await page.get_by_text("Merci, votre fiche est enregistrée").wait_for()
        # An employer's registration to an exchange session, from its link, in chromium.
        await check(employer_link)
        await page.fill("#name", "Anne Favre")
        await page.fill("#organisation", "Boulangerie Favre")
        await page.get_by_role("button", name="M'inscrire").click()
        await page.get_by_text("Merci, votre inscription est enregistrée").wait_for()
        pages_by_user = {
            "camille.martin@example.org": [
                "/taches",
                f"/taches/{task.id}",
                f"/parcours/{pathway_id}",
                "/accueil",
                "/accueil/nouvelle",
                "/partenaires",
                "/partenaires/departement74",
                f"/accueil/{host.id}",
                "/rencontres",
            ],
            "lea.dupont@example.org": [
                "/gto",
                f"/gto/escalades/{escalations[0].id}",
                "/gto/ordre-du-jour",
                "/rencontres/nouvelle",
                f"/rencontres/{meeting.id}",
                f"/rencontres/{meeting.id}/modifier",
            ],
            "marc.girard@example.org": [
                "/definitions",
                "/definitions/nouvelle",
                "/definitions/rsa_socio_pro/evaluation",
            ],
            "helene.roche@example.org": ["/direction"],
        }
        for email, paths in pages_by_user.items():
            await page.context.clear_cookies()
            await sign_in(page, base, web, email)
            for path in paths:
                await check(path)
    found = {path: violations for path, violations in found.items() if violations}
    if found:
        pytest.fail("axe-core: serious or critical violations\n" + report(found), pytrace=False)
