"""The three jobs done in a real browser (Debian's chromium driven by Playwright): a caseworker
completes a task with a form and sees the next one; a GTO lead decides an escalation and the
pathway moves on; a designer pastes an invalid definition, sees the error at its step, fixes it
and publishes. Screenshots of the main pages are kept in test-artifacts/."""

from __future__ import annotations

from store import queries as q
from tests.browser import browser_page, screenshot, served, sign_in
from tests.conftest import Web, eventually
from tests.flows import timed


async def test_admin_signs_in_and_sees_the_territory(web: Web) -> None:
    async with served(web) as base, browser_page() as page:
        await sign_in(page, base, web, "admin@example.org")
        assert page.url.endswith("/admin")
        await page.get_by_role("heading", name="Territoire", exact=True).wait_for()
        assert await page.get_by_text("Mission Locale du Chablais").count() >= 1
        await screenshot(page, "admin-territoire")


async def test_caseworker_completes_a_task_and_sees_the_next_one(web: Web) -> None:
    pathway_id = await web.parcours.start("rsa_socio_pro")
    async with served(web) as base, browser_page() as page:
        await sign_in(page, base, web, "camille.martin@example.org")
        await page.get_by_role("link", name="Décider l'orientation").first.wait_for()
        await screenshot(page, "caseworker-inbox")
        task = web.parcours.open_task(pathway_id, "orientation")
        await page.goto(f"{base}/taches/{task.id}")
        # Submitting without the required choice shows the error next to the field.
        await page.get_by_role("button", name="Personne orientée").click()
        await page.get_by_text("« Type d'orientation » est obligatoire").first.wait_for()
        await screenshot(page, "caseworker-task-error")
        await page.locator("label", has_text="Socio-professionnelle").click()  # DSFR radios: the label takes the click
        await page.get_by_role("button", name="Personne orientée").click()
        await page.get_by_text("Diagnostic socio-professionnel").first.wait_for()
        assert f"/parcours/{pathway_id}" in page.url
        await screenshot(page, "caseworker-pathway")
        await page.goto(f"{base}/taches")
        await page.get_by_role("link", name="Diagnostic socio-professionnel").first.wait_for()
    assert [t.step_id for t in web.parcours.open_tasks(pathway_id)] == ["diagnostic"]


async def test_gto_lead_decides_an_escalation_and_the_pathway_moves_on(web: Web) -> None:
    web.parcours.publish(
        timed(deadline="PT1S", reminder_before="PT1S", reminder_after="PT1H", level1="PT1S", level2="PT1H")
    )
    pathway_id = await web.parcours.start("test_timed")
    escalation = await eventually(
        lambda: q.list_escalations(web.parcours.engine, pathway_id=pathway_id), what="escalation"
    )
    async with served(web) as base, browser_page() as page:
        await sign_in(page, base, web, "lea.dupont@example.org")
        await page.get_by_text(pathway_id).first.wait_for()
        await screenshot(page, "gto-dashboard")
        await page.goto(f"{base}/gto/escalades/{escalation[0].id}")
        await page.get_by_role("heading", name="Décision du GTO").wait_for()
        await page.locator("label", has_text="Confier la tâche à une autre organisation").click()
        await page.locator("#organisation_id").select_option("departement74")
        await page.get_by_label("Note du GTO").fill("Le Département reprend la main.")
        await screenshot(page, "gto-escalation")
        await page.get_by_role("button", name="Enregistrer la décision").click()
        await page.wait_for_load_state("networkidle")
    task = web.parcours.open_task(pathway_id, "tache")
    assert task.organisation_id == "departement74" and task.generation == 1  # a fresh clock for the new owner
    assert [e.status for e in q.list_escalations(web.parcours.engine, pathway_id=pathway_id, status=None)] == [
        "decided"
    ]


async def test_designer_fixes_an_invalid_definition_and_publishes_it(web: Web) -> None:
    valid = timed(definition_id="atelier_essai")
    invalid = valid.replace("next: fin}", "next: nulle_part}")
    async with served(web) as base, browser_page() as page:
        await sign_in(page, base, web, "marc.girard@example.org")
        await page.goto(f"{base}/definitions/nouvelle")
        await page.get_by_label("Texte de la définition (YAML)").fill(invalid)
        await page.get_by_role("button", name="Vérifier").click()
        report = page.locator("#validation")
        await report.get_by_text("étape cible inconnue « nulle_part »").first.wait_for()
        assert await report.locator("code", has_text="tache").count() >= 1  # the error sits at its step
        await screenshot(page, "designer-invalid")
        await page.get_by_label("Texte de la définition (YAML)").fill(valid)
        await page.get_by_role("button", name="Vérifier").click()
        await report.get_by_text("Définition valide").wait_for()
        await page.get_by_role("button", name="Publier la nouvelle version").click()
        await page.wait_for_url("**/definitions/atelier_essai/v/1**")
        await page.locator("svg").first.wait_for()
        await screenshot(page, "designer-definition")
    definition = q.latest_definition(web.parcours.engine, definition_id="atelier_essai")
    assert definition is not None and definition.version == 1
