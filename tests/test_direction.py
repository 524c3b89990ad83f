"""The SPIE direction (issue 12 §6): a view across every basin (stuck pathways per basin, the
level-2 escalations to decide, the evaluations), and level-2 escalations decided in the app with
the GTO's decisions, while level-1 ones stay the GTO's."""

from __future__ import annotations

from typing import Any

from store import queries as q
from tests.conftest import Web, csrf_of, eventually
from tests.flows import timed

HELENE = "helene.roche@example.org"  # direction du SPIE
CAMILLE = "camille.martin@example.org"


def escalations(web: Web, pathway_id: str, level: int) -> list[Any]:
    return [e for e in q.list_escalations(web.parcours.engine, pathway_id=pathway_id) if e.level == level]


async def test_the_direction_sees_every_basin_and_decides_level_2_escalations(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(timed(level1="PT1S", level2="PT1S", definition_id="test_direction"))
    pathway_id = await parcours.start("test_direction", basin="genevois")
    level2 = (await eventually(lambda: escalations(web, pathway_id, 2), what="level-2 escalation"))[0]
    level1 = escalations(web, pathway_id, 1)[0]

    helene = await web.signed_in(HELENE)
    home = await helene.get("/direction")
    assert home.status_code == 200
    table = home.text.split('id="stuck-per-basin"')[1].split("</table>")[0]
    assert '<th scope="row">Genevois</th><td>1</td>' in table and "Bassin annécien</th><td>0</td>" in table
    assert f"/gto/escalades/{level2.id}" in home.text and f"/gto/escalades/{level1.id}" not in home.text
    assert "/definitions/test_direction/evaluation" in home.text
    assert (await helene.get("/definitions/test_direction/evaluation")).status_code == 200

    # Level 1 is the GTO's; level 2 is the direction's, with the same decisions.
    assert (await helene.get(f"/gto/escalades/{level1.id}")).status_code == 403
    page = await helene.get(f"/gto/escalades/{level2.id}")
    assert page.status_code == 200 and 'name="action"' in page.text
    decided = await helene.post(
        f"/gto/escalades/{level2.id}",
        data={"csrf": csrf_of(page.text), "action": "unblock", "note": "Vu en direction."},
    )
    assert decided.status_code == 303, decided.text
    states = {e.id: e.status for e in q.list_escalations(parcours.engine, pathway_id=pathway_id, status=None)}
    assert states[level2.id] == "decided"

    camille = await web.signed_in(CAMILLE)
    assert (await camille.get("/direction")).status_code == 403


EXPERIMENTAL = """
id: test_essaimage
title: Parcours expérimental
status: experimental
basins: [annecien]
start: accueil
steps:
  - {kind: task, id: accueil, title: Accueil, role: referent, outcomes: [{id: fait, label: Fait, next: fin}]}
  - {kind: end, id: fin, title: Fin, exit_reason: autre}
"""


async def test_the_direction_spreads_an_experiment_in_one_audited_action(web: Web) -> None:
    from sqlmodel import select

    from store import models
    from store.db import session_scope

    parcours = web.parcours
    parcours.publish(EXPERIMENTAL)
    running = await parcours.start("test_essaimage", basin="annecien")

    marc = await web.signed_in("marc.girard@example.org")
    page = (await marc.get("/definitions/test_essaimage/evaluation")).text
    assert "Essaimer" not in page  # the direction's action
    refused = await marc.post(
        "/definitions/test_essaimage/essaimage", data={"csrf": csrf_of(page), "version": "1", "basins": "chablais"}
    )
    assert refused.status_code == 303
    assert "direction du SPIE" in (await marc.get("/definitions/test_essaimage/evaluation")).text

    helene = await web.signed_in(HELENE)
    page = (await helene.get("/definitions/test_essaimage/evaluation")).text
    assert 'id="spread-form"' in page and 'value="chablais"' in page
    done = await helene.post(
        "/definitions/test_essaimage/essaimage",
        data={"csrf": csrf_of(page), "version": "1", "basins": ["chablais", "genevois"], "promote": "oui"},
    )
    assert done.status_code == 303
    with session_scope(parcours.engine) as session:
        row = session.get(models.DefinitionVersion, ("test_essaimage", 1))
        assert row is not None and row.status == "active" and row.basins == ["annecien", "chablais", "genevois"]
        spread = session.exec(select(models.AuditEvent).where(models.AuditEvent.action == "definition_spread")).all()
    assert len(spread) == 1 and spread[0].actor_user_id == q.user_id_of(parcours.engine, email=HELENE)
    assert parcours.pathway(running).definition_version == 1  # running pathways keep their version
    assert "Version 1 essaimée" in (await helene.get("/definitions/test_essaimage/evaluation")).text
