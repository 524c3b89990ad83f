"""A page that only reads opens one or two database transactions per request (not one per
query), and what it writes (the trace of a view of personal data) is still committed at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlmodel import select

from store import models
from store.db import session_scope
from tests.conftest import Web
from tests.flows import flow

CAMILLE = "camille.martin@example.org"  # departement74: referent


@contextmanager
def database_traffic(engine: Any) -> Iterator[Counter[str]]:
    """Connections checked out of the pool and transactions begun, while the block runs."""
    seen: Counter[str] = Counter()

    def checkout(*_: Any) -> None:
        seen["connections"] += 1

    def begin(*_: Any) -> None:
        seen["transactions"] += 1

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine, "begin", begin)
    try:
        yield seen
    finally:
        event.remove(engine.pool, "checkout", checkout)
        event.remove(engine, "begin", begin)


def views_of(engine: Any, pathway_id: str) -> int:
    with session_scope(engine) as session:
        rows = session.exec(select(models.AuditEvent).where(models.AuditEvent.pathway_id == pathway_id)).all()
        return sum(1 for row in rows if row.actor_user_id and row.action == "personal_data_viewed")


async def test_a_page_reads_in_one_transaction_and_its_audit_row_is_committed(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    task_id = parcours.open_task(pathway_id, "accueil").id
    camille = await web.signed_in(CAMILLE)
    views_before = views_of(parcours.engine, pathway_id)

    with database_traffic(parcours.engine) as traffic:
        response = await camille.get(f"/taches/{task_id}")
    assert response.status_code == 200 and "Accueil" in response.text
    # Reading the session, the user, the task, its pathway, its person, its form and history
    # (a dozen queries): one transaction for the reads up to the audit row, committed at once,
    # and one for the reads after it.
    assert traffic["transactions"] <= 2 and traffic["connections"] <= 2, traffic
    assert views_of(parcours.engine, pathway_id) == views_before + 1

    with database_traffic(parcours.engine) as traffic:
        response = await camille.get(f"/parcours/{pathway_id}")
    assert response.status_code == 200
    assert traffic["transactions"] <= 2 and traffic["connections"] <= 2, traffic
    assert views_of(parcours.engine, pathway_id) == views_before + 2
