"""The pathway engine end to end, as its users observe it: tasks in inboxes, e-mails received,
escalations open, the pathway's state in the read model."""

from __future__ import annotations

import pytest

from services.errors import ServiceError
from store import queries as q
from tests.conftest import Parcours, eventually
from tests.flows import flow

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent)
JULIEN = "julien.roux@example.org"  # caseworker, ft_annecy


async def test_a_pathway_runs_through_every_step_kind(parcours: Parcours) -> None:
    parcours.publish(flow("all"))
    pathway_id = await parcours.start("test_flow")

    # The first task is in the referent's inbox, and its organisation is e-mailed.
    accueil = parcours.open_task(pathway_id, "accueil")
    assert accueil.organisation_id == "departement74"
    mails = await eventually(lambda: parcours.mail.about(pathway_id), what="task assigned e-mail")
    assert "Nouvelle tâche : Accueil" in mails[0]["Subject"]
    assert str(mails[0]["To"]) == "insertion@departement74.example.org"  # the organisation's mailbox
    assert str(mails[0]["X-Envelope-To"]) == "insertion@departement74.example.org"  # and nobody else

    camille, julien = parcours.service.actor_for(CAMILLE), parcours.service.actor_for(JULIEN)
    with pytest.raises(ServiceError, match="ne peut pas traiter") as denied:
        await parcours.service.complete_task(
            task_id=accueil.id, actor=julien, outcome="fait", data={"besoin": "emploi"}
        )
    assert denied.value.status == 403
    with pytest.raises(ServiceError, match="Issue inconnue"):
        await parcours.service.complete_task(
            task_id=accueil.id, actor=camille, outcome="nope", data={"besoin": "emploi"}
        )
    with pytest.raises(ServiceError) as invalid:
        await parcours.service.complete_task(task_id=accueil.id, actor=camille, outcome="fait", data={})
    assert "besoin" in invalid.value.fields

    result = await parcours.service.complete_task(
        task_id=accueil.id, actor=camille, outcome="fait", data={"besoin": "emploi", "commentaire": "ok"}
    )
    assert "Accueil réalisé" in result.message
    # Read-your-writes: the decision has routed to the joint accompaniment already.
    open_steps = {t.step_id: t.organisation_id for t in parcours.open_tasks(pathway_id)}
    assert open_steps == {"appui_referent": "departement74", "appui_ft": "ft_annecy"}
    with pytest.raises(ServiceError, match="plus ouverte"):
        await parcours.service.complete_task(
            task_id=accueil.id, actor=camille, outcome="fait", data={"besoin": "emploi"}
        )

    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "appui_ft").id, actor=julien, outcome="fait", data={}
    )
    assert [t.step_id for t in parcours.open_tasks(pathway_id)] == ["appui_referent"]  # all: still waiting
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "appui_referent").id, actor=camille, outcome="fait", data={}
    )

    suivi = parcours.open_task(pathway_id, "suivi")
    await parcours.service.skip_step(task_id=suivi.id, actor=camille, reason="déjà fait ailleurs")

    closed = await eventually(
        lambda: (p := parcours.pathway(pathway_id)) and p.status == "closed" and p, what="pathway end"
    )
    assert closed.exit_reason == "emploi_durable"
    detail = q.pathway_detail(parcours.engine, pathway_id=pathway_id)
    assert detail is not None
    timeline = [(s["step_id"], s["status"]) for s in detail["steps"]]
    assert timeline == [
        ("accueil", "done"),
        ("orienter", "done"),
        ("conjoint", "done"),
        ("appui_referent", "done"),
        ("appui_ft", "done"),
        ("suivi", "skipped"),
        ("attente", "done"),
        ("fin_emploi", "done"),
    ]
    actions = [a["action"] for a in detail["audit"]]
    assert actions[0] == "pathway_started" and "step_skipped" in actions and actions[-1] == "pathway_closed"
    assert {m["organisation_id"] for m in detail["follow_up"]} == {"departement74", "ft_annecy"}
    # Form answers stay in the read model, linked to the task.
    done = q.get_task(parcours.engine, task_id=accueil.id)
    assert done is not None and done.status == "done" and done.submission_id


async def test_decision_default_branch(parcours: Parcours) -> None:
    parcours.publish(flow("all"))
    pathway_id = await parcours.start("test_flow")
    camille = parcours.service.actor_for(CAMILLE)
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "accueil").id, actor=camille, outcome="fait", data={"besoin": "social"}
    )
    pathway = parcours.pathway(pathway_id)
    assert pathway.status == "closed" and pathway.exit_reason == "reorientation"


async def test_the_workflow_itself_rejects_what_is_not_allowed(parcours: Parcours) -> None:
    """Validators guard the workflow even against a caller that skips the service's checks."""
    from temporalio.client import WorkflowUpdateFailedError

    from workflows.model import CompleteTask
    from workflows.pathway import PathwayWorkflow

    parcours.publish(flow("all"))
    pathway_id = await parcours.start("test_flow")
    accueil = parcours.open_task(pathway_id, "accueil")
    handle = parcours.client.get_workflow_handle(pathway_id)
    cases = [
        (
            CompleteTask(
                item_id=accueil.id, actor=parcours.service.actor_for(JULIEN), outcome="fait", filled=["besoin"]
            ),
            "ne peut pas traiter",
        ),
        (
            CompleteTask(item_id=accueil.id, actor=parcours.service.actor_for(CAMILLE), outcome="fait"),
            "Champ obligatoire manquant",
        ),
        (CompleteTask(item_id="P-X-1", actor=parcours.service.actor_for(CAMILLE), outcome="fait"), "n'est pas ouverte"),
    ]
    for command, message in cases:
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(PathwayWorkflow.complete_task, command)
        assert message in str(rejected.value.cause)
    assert parcours.open_task(pathway_id, "accueil").status == "open"
