"""The README's designers' guide, taken literally: its example validates, publishes, runs, sends
its e-mails and escalates to the right basin's GTO."""

from __future__ import annotations

import re
from pathlib import Path

from definitions.loader import parse_text
from store import queries as q
from tests.conftest import Parcours, eventually

README = Path(__file__).resolve().parents[1] / "README.md"


def guide_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- guide-example[^>]*-->\s*```yaml\n(.*?)```", text, re.DOTALL)
    assert match, "the README lost its guide example"
    return match.group(1)


async def test_the_guide_example_runs_and_escalates_to_the_chablais_gto(parcours: Parcours) -> None:
    source = guide_example()
    definition = parse_text(source, source="README.md")
    version, created = q.publish_definition(parcours.engine, definition=definition, source=source, published_by="test")
    assert (version, created) == (1, True)

    pathway_id = await parcours.start(definition.id, basin="chablais")
    task = parcours.open_task(pathway_id, "diagnostic_mobilite")
    assert task.organisation_id == "mobilite_chablais"  # partner:association serving the Chablais

    escalated = await eventually(
        lambda: [m for m in parcours.mail.about(pathway_id) if "Escalade" in m["Subject"]],
        timeout=30,
        what="escalation e-mail",
    )
    assert "gto.chablais@spie74.example.org" in escalated[0]["X-Envelope-To"]
    assert "sophie.favre@example.org" in escalated[0]["X-Envelope-To"]  # the Chablais GTO lead
    subjects = [m["Subject"] for m in parcours.mail.about(pathway_id)]
    assert any("Nouvelle tâche" in s for s in subjects) and any("Relance" in s for s in subjects)
    assert [e.basin_id for e in q.list_escalations(parcours.engine, pathway_id=pathway_id)] == ["chablais"]

    gto = parcours.service.actor_for("sophie.favre@example.org")
    escalation = q.list_escalations(parcours.engine, pathway_id=pathway_id)[0]
    await parcours.service.decide_escalation(
        escalation_id=escalation.id,
        actor=gto,
        action="reassign",
        organisation_id="departement74",
        note="relais du référent",
    )
    camille = parcours.service.actor_for("camille.martin@example.org")
    task = parcours.open_task(pathway_id, "diagnostic_mobilite")
    await parcours.service.complete_task(
        task_id=task.id,
        actor=camille,
        outcome="fait",
        data={"permis": "oui", "besoin": "vehicule", "savoir_etre": {"autonomie": 3}},
    )
    assert [t.step_id for t in parcours.open_tasks(pathway_id)] == ["aide_vehicule"]
