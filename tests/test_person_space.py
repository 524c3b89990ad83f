"""The person's own space (issue 11 §4): opened from a one-time link the referent e-mails, it
shows that person's pathway, next steps and whom to contact, passport and consents, lets them
withdraw the passport's sharing and export all their data (JSON and PDF), and reaches nothing
else; the referent produces the same export. Checked in chromium too, on a phone's screen."""

from __future__ import annotations

import json
import re
from html import unescape
from io import BytesIO
from typing import Any

from pypdf import PdfReader

from tests.browser import browser_page, served
from tests.conftest import Web, csrf_of, eventually
from tests.test_accessibility import axe_violations, report
from tests.test_passport import GRIDS

CAMILLE = "camille.martin@example.org"  # departement74: referent
JULIEN = "julien.roux@example.org"  # ft_annecy: in the follow-up group
ALEX = {"first_name": "Alex", "last_name": "Martin", "email": "alex.martin@example.org", "consent": True}
BEA = {"first_name": "Béatrice", "last_name": "Autre", "email": "bea.autre@example.org", "consent": True}


async def started(web: Web, person: dict[str, Any]) -> str:
    parcours = web.parcours
    camille, julien = parcours.service.actor_for(CAMILLE), parcours.service.actor_for(JULIEN)
    pathway_id = await parcours.service.start_pathway(
        definition_id="test_passeport", basin_id="annecien", referent_org="departement74", person=person, actor=camille
    )
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "diagnostic").id,
        actor=camille,
        outcome="fait",
        data={"grille": {"autonomie": 3, "rigueur": 2}},
    )
    assert julien.organisation_id == parcours.open_task(pathway_id, "bilan").organisation_id
    return pathway_id


async def link_for(web: Web, pathway_id: str, email: str) -> str:
    referent = await web.signed_in(CAMILLE)
    page = (await referent.get(f"/parcours/{pathway_id}")).text
    sent = await referent.post(f"/parcours/{pathway_id}/espace-personne", data={"csrf": csrf_of(page)})
    assert sent.status_code == 303
    messages = await eventually(
        lambda: [
            m for m in web.parcours.mail.messages if email in str(m["To"]) and "Votre espace" in str(m["Subject"])
        ],
        what="person space e-mail",
    )
    found = re.search(r"/mon-espace/lien/[\w\-]+", messages[-1].get_content())
    assert found
    return found.group(0)


async def test_the_person_sees_their_own_space_exports_their_data_and_nothing_else(web: Web) -> None:
    web.parcours.publish(GRIDS)
    alex, bea = await started(web, ALEX), await started(web, BEA)
    link = await link_for(web, alex, ALEX["email"])

    async with web.client() as person:
        opened = await person.get(link)  # a mail client's preview spends nothing
        assert opened.status_code == 200 and "Ouvrir mon espace" in opened.text
        entered = await person.post(link, data={"csrf": csrf_of(opened.text)})
        assert entered.status_code == 303 and entered.headers["location"] == "/mon-espace"
        space = unescape((await person.get("/mon-espace")).text)
        assert "Bonjour Alex" in space and "Parcours avec savoir-être" in space
        assert (
            'Bilan France Travail</strong>, avec France Travail Annecy (<a href="mailto:annecy@ft.example.org">'
            in space
        )
        assert "Votre référent : <strong>Département de la Haute-Savoie" in space
        assert "Autonomie : Acquis" in space  # the passport's recognised skills
        assert "Béatrice" not in space

        # The export: complete for Alex, nothing of Béatrice.
        exported = await person.get("/mon-espace/donnees.json")
        data = exported.json()
        assert data["person"]["email"] == ALEX["email"] and [p["id"] for p in data["pathways"]] == [alex]
        answers = data["pathways"][0]["form_answers"]
        assert answers[0]["data"] == {"grille": {"autonomie": 3, "rigueur": 2}}
        assert {s["title"] for s in data["pathways"][0]["steps"]} >= {"Diagnostic", "Bilan France Travail"}
        assert data["pathways"][0]["traces"], "who read or changed the pathway is part of the export"
        text = json.dumps(data, ensure_ascii=False)
        assert bea not in text and "Béatrice" not in text and BEA["email"] not in text
        document = await person.get("/mon-espace/donnees.pdf")
        pdf_text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(document.content)).pages)
        assert "Mes données dans Parcours" in pdf_text and "alex.martin@example.org" in pdf_text
        assert "Béatrice" not in pdf_text

        # Nothing else: no staff page, no other person's passport, the link serves once.
        assert (await person.get("/taches")).status_code == 303
        assert (await person.get(f"/parcours/{alex}")).status_code == 303
        assert (await person.get(f"/mon-espace/passeport/{bea}.pdf")).status_code == 404
        assert (await person.get(f"/mon-espace/passeport/{alex}.pdf")).status_code == 200
        replayed = await person.post(link, data={"csrf": csrf_of(opened.text)})
        assert replayed.status_code == 409 and "déjà servi" in unescape(replayed.text)
    async with web.client() as stranger:
        assert (await stranger.get("/mon-espace")).status_code == 401
        assert (await stranger.get("/mon-espace/donnees.json")).status_code == 401

    # The referent produces the same export for a subject-access request; a partner may not.
    referent = await web.signed_in(CAMILLE)
    same = (await referent.get(f"/parcours/{alex}/donnees-personne.json")).json()
    assert same["person"] == data["person"] and [p["id"] for p in same["pathways"]] == [alex]
    partner = await web.signed_in(JULIEN)
    assert (await partner.get(f"/parcours/{alex}/donnees-personne.json")).status_code == 403


async def test_the_person_withdraws_the_passport_sharing_and_a_person_without_e_mail_gets_no_link(web: Web) -> None:
    web.parcours.publish(GRIDS)
    alex = await started(web, ALEX)
    no_email = await started(web, {k: v for k, v in BEA.items() if k != "email"})
    referent = await web.signed_in(CAMILLE)
    page = (await referent.get(f"/parcours/{no_email}")).text
    await referent.post(f"/parcours/{no_email}/espace-personne", data={"csrf": csrf_of(page)})
    assert "Aucune adresse e-mail n'est connue" in unescape((await referent.get(f"/parcours/{no_email}")).text)

    page = (await referent.get(f"/parcours/{alex}")).text
    await referent.post(f"/parcours/{alex}/passeport/consentement", data={"csrf": csrf_of(page), "accord": "oui"})
    partner = await web.signed_in(JULIEN)
    assert (await partner.get(f"/parcours/{alex}/passeport.pdf")).status_code == 200
    link = await link_for(web, alex, ALEX["email"])
    async with web.client() as person:
        opened = await person.get(link)
        await person.post(link, data={"csrf": csrf_of(opened.text)})
        space = (await person.get("/mon-espace")).text
        assert "Retirer mon accord" in space
        await person.post("/mon-espace/accords/passeport", data={"csrf": csrf_of(space)})
        assert "pas d'accord : seul votre référent le voit" in unescape((await person.get("/mon-espace")).text)
    assert (await partner.get(f"/parcours/{alex}/passeport.pdf")).status_code == 403


async def test_the_person_s_pages_in_chromium_on_a_phone(web: Web) -> None:
    web.parcours.publish(GRIDS)
    alex = await started(web, ALEX)
    link = await link_for(web, alex, ALEX["email"])
    found: dict[str, list[dict[str, Any]]] = {}
    async with served(web) as base, browser_page() as page:
        await page.set_viewport_size({"width": 375, "height": 740})
        found[link] = await axe_violations(page, base, link)
        await page.get_by_role("button", name="Ouvrir mon espace").click()
        await page.get_by_role("heading", name="Bonjour Alex").wait_for()
        found["/mon-espace"] = await axe_violations(page, base, "/mon-espace")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the space scrolls sideways on a phone ({width} px)"
    found = {path: violations for path, violations in found.items() if violations}
    assert not found, "axe-core: serious or critical violations\n" + report(found)
