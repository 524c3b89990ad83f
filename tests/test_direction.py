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
