"""Retention: a person is anonymised once all their pathways are closed past retention."""

from __future__ import annotations

from datetime import timedelta

from store import models
from store import queries as q
from store.db import session_scope
from store.retention import anonymise, expired_persons
from tests.conftest import Parcours
from tests.flows import flow


async def test_closed_pathways_past_retention_are_anonymised(parcours: Parcours) -> None:
    parcours.publish(flow("all"))
    closed_id = await parcours.start("test_flow")
    open_id = await parcours.start("test_flow")
    camille = parcours.service.actor_for("camille.martin@example.org")
    q.save_note(
        parcours.engine, text="situation familiale délicate", author_user_id=camille.user_id, pathway_id=closed_id
    )
    await parcours.service.close(
        pathway_id=closed_id, actor=camille, exit_reason="demenagement", note="parti en Savoie"
    )

    assert expired_persons(parcours.engine) == []  # within the 730-day retention
    later = q.now() + timedelta(days=731)
    closed_person = parcours.pathway(closed_id).person_id
    assert expired_persons(parcours.engine, at=later) == [closed_person]  # the open pathway's person is kept
    assert anonymise(parcours.engine, person_ids=[closed_person]) == 1

    with session_scope(parcours.engine) as session:
        person = session.get(models.Person, closed_person)
        assert person is not None and person.anonymised_at is not None
        assert (person.first_name, person.last_name, person.nir) == ("Personne", "anonymisée", None)
        assert [n for n in session.exec(q.select(models.Note)) if n.pathway_id == closed_id] == []
        kept = session.get(models.Person, parcours.pathway(open_id).person_id)
        assert kept is not None and kept.first_name == "Alex"
    detail = q.pathway_detail(parcours.engine, pathway_id=closed_id)
    assert detail is not None and detail["audit"][-1]["action"] == "person_anonymised"
    assert anonymise(parcours.engine, person_ids=[closed_person]) == 0  # idempotent
