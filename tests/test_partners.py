"""The partner directory (issue 12 §7): searchable by every signed-in user, each organisation
keeping its own entry (audited), the members of each basin's GTO listed."""

from __future__ import annotations

from html import unescape

from sqlmodel import select

from store import models
from store.db import session_scope
from tests.conftest import Web, csrf_of

LUCAS = "lucas.perrin@example.org"  # mobilite_annecy, an association
SARAH = "sarah.benali@example.org"  # ml_annecy


async def test_each_organisation_keeps_its_entry_and_everyone_finds_it(web: Web) -> None:
    lucas = await web.signed_in(LUCAS)
    page = (await lucas.get("/partenaires/mobilite_annecy")).text
    form = {
        "csrf": csrf_of(page),
        "offer": "Prêt de scooters et de vélos électriques, auto-école sociale",
        "publics": "Personnes en insertion sans moyen de transport",
        "access_conditions": "Sur prescription d'un conseiller",
        "contact_1_name": "Lucas Perrin",
        "contact_1_role": "Conseiller mobilité",
        "contact_1_email": "pas-une-adresse",
    }
    refused = await lucas.post("/partenaires/mobilite_annecy", data=form)
    assert refused.status_code == 422 and "Contact 1 : adresse e-mail invalide." in unescape(refused.text)
    saved = await lucas.post(
        "/partenaires/mobilite_annecy", data={**form, "contact_1_email": "lucas@mobilite.example.org"}
    )
    assert saved.status_code == 303

    # Another organisation's entry is not theirs to write.
    other = await lucas.post("/partenaires/ml_annecy", data={**form, "contact_1_email": "x@example.org"})
    assert other.status_code == 403 and "Chaque organisation tient sa propre fiche" in unescape(other.text)

    sarah = await web.signed_in(SARAH)
    found = unescape((await sarah.get("/partenaires", params={"recherche": "SCOOTERS", "bassin": "annecien"})).text)
    assert "1 organisation(s)" in found and "Mobilité" in found
    assert (
        "0 organisation(s)"
        in (await sarah.get("/partenaires", params={"recherche": "scooters", "bassin": "chablais"})).text
    )
    entry = unescape((await sarah.get("/partenaires/mobilite_annecy")).text)
    assert "Lucas Perrin (Conseiller mobilité)" in entry and "Sur prescription d'un conseiller" in entry
    assert 'id="partner-form"' not in entry
    directory = unescape((await sarah.get("/partenaires")).text)
    assert "Bassin annécien" in directory and "Léa Dupont" in directory  # the GTO and its lead
    with session_scope(web.parcours.engine) as session:
        audited = session.exec(
            select(models.AuditEvent).where(models.AuditEvent.action == "partner_profile_updated")
        ).all()
    assert [a.detail["organisation"] for a in audited] == ["mobilite_annecy"]
