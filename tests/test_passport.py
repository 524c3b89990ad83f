"""The savoir-être passport (issue 11 §3): every soft-skills assessment kept with who assessed it
and when, the progress per skill over time (a chart and its table), a PDF of what was recognised,
shared with the follow-up group only with the person's consent, which the referent records and
can withdraw."""

from __future__ import annotations

from html import unescape
from io import BytesIO

from pypdf import PdfReader
from sqlmodel import select

from store import models
from store.db import session_scope
from tests.conftest import Web, csrf_of

CAMILLE = "camille.martin@example.org"  # departement74: referent
JULIEN = "julien.roux@example.org"  # ft_annecy: in the follow-up group

GRIDS = """
id: test_passeport
title: Parcours avec savoir-être
status: active
basins: [all]
start: diagnostic
steps:
  - kind: task
    id: diagnostic
    title: Diagnostic
    role: referent
    form:
      - {id: grille, label: Savoir-être (diagnostic), type: soft_skills, skills: [autonomie, rigueur, curiosite]}
    outcomes: [{id: fait, label: Fait, next: bilan}]
  - kind: task
    id: bilan
    title: Bilan France Travail
    role: "partner:france_travail"
    form:
      - {id: grille, label: Savoir-être (bilan), type: soft_skills, skills: [autonomie, rigueur]}
    outcomes: [{id: fait, label: Fait, next: suivi}]
  - {kind: task, id: suivi, title: Suivi, role: referent, outcomes: [{id: fait, label: Fait, next: fin}]}
  - {kind: end, id: fin, title: Sortie, exit_reason: emploi_durable}
"""


async def test_the_passport_shows_progress_per_skill_and_is_shared_only_with_consent(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(GRIDS)
    pathway_id = await parcours.start("test_passeport")
    camille, julien = parcours.service.actor_for(CAMILLE), parcours.service.actor_for(JULIEN)
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "diagnostic").id,
        actor=camille,
        outcome="fait",
        data={"grille": {"autonomie": 1, "rigueur": 2, "curiosite": 3}},
    )
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "bilan").id,
        actor=julien,
        outcome="fait",
        data={"grille": {"autonomie": 3, "rigueur": 4}},
    )

    referent = await web.signed_in(CAMILLE)
    page = unescape((await referent.get(f"/parcours/{pathway_id}")).text)
    section = page.split('id="passeport"')[1].split("</section>")[0]
    # The table, the accessible alternative to the chart: each skill's level at each assessment.
    assert "Autonomie</th><td>1 – À développer</td><td>3 – Acquis</td>" in section
    assert "Curiosité</th><td>3 – Acquis</td><td>—</td>" in section
    assert "Bilan France Travail, France Travail Annecy" in section
    assert "<svg" in section and "Niveau par savoir-être" in section  # the chart, drawn server-side
    assert "<script" not in section  # no script in it (the page's Content-Security-Policy)
    assert "Visible de la seule structure référente" in section

    # Without the person's consent, France Travail (in the group) does not see it.
    partner = await web.signed_in(JULIEN)
    partner_page = unescape((await partner.get(f"/parcours/{pathway_id}")).text)
    assert "n'est partagé qu'avec l'accord de la personne" in partner_page
    assert "Autonomie</th>" not in partner_page
    assert (await partner.get(f"/parcours/{pathway_id}/passeport.pdf")).status_code == 403
    # Only the referent records the consent.
    refused = await partner.post(
        f"/parcours/{pathway_id}/passeport/consentement", data={"csrf": csrf_of(partner_page), "accord": "oui"}
    )
    assert refused.status_code == 303
    assert "Seule la structure référente" in unescape((await partner.get(f"/parcours/{pathway_id}")).text)

    given = await referent.post(
        f"/parcours/{pathway_id}/passeport/consentement", data={"csrf": csrf_of(page), "accord": "oui"}
    )
    assert given.status_code == 303
    shared = unescape((await partner.get(f"/parcours/{pathway_id}")).text)
    assert "Partagé avec le groupe de suivi, avec l'accord de la personne" in shared
    assert "Autonomie</th><td>1 – À développer</td><td>3 – Acquis</td>" in shared

    # The PDF lists what was recognised (last level 3 or 4) and every assessment.
    response = await partner.get(f"/parcours/{pathway_id}/passeport.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(BytesIO(response.content)).pages)
    recognised = text.split("Savoir-être reconnus")[1].split("Évaluations")[0]
    assert "Autonomie : Acquis" in recognised and "Rigueur : Maîtrisé" in recognised
    assert "Curiosité : Acquis" in recognised and "Alex Test" in text
    assert "par Julien Roux (France Travail Annecy)" in text

    # Withdrawn: the partner no longer sees it; each change and each PDF is in the audit log.
    page = (await referent.get(f"/parcours/{pathway_id}")).text
    await referent.post(f"/parcours/{pathway_id}/passeport/consentement", data={"csrf": csrf_of(page), "accord": "non"})
    assert (await partner.get(f"/parcours/{pathway_id}/passeport.pdf")).status_code == 403
    with session_scope(parcours.engine) as session:
        rows = session.exec(select(models.AuditEvent).where(models.AuditEvent.pathway_id == pathway_id)).all()
        actions = [row.action for row in rows]
        passports = [row for row in rows if row.detail.get("what") == "passport"]
    assert actions.count("consent_given") == 1 and actions.count("consent_withdrawn") == 1
    assert [row.actor_user_id for row in passports] == [parcours.service.actor_for(JULIEN).user_id]
