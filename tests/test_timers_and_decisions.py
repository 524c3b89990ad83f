"""Timers, escalations, GTO decisions and the pathway's life cycle, as users observe them: tasks
in inboxes, e-mails received, escalations open, the pathway row. Durations are short ISO delays;
what must NOT happen is proved against a control pathway whose later e-mail does arrive."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from email.message import EmailMessage, Message
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from services.pathways import ServiceError
from store import queries as q
from tests.conftest import Parcours, eventually
from tests.flows import LOOP, fast, flow, timed

CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent)
JULIEN = "julien.roux@example.org"  # caseworker, ft_annecy
LUCAS = "lucas.perrin@example.org"  # caseworker, mobilite_annecy (association)
LEA = "lea.dupont@example.org"  # gto_lead, basin annecien
KARIM = "karim.bouzid@example.org"  # gto_lead, basin genevois
GTO_ANNECIEN = "gto.annecien@spie74.example.org"
DIRECTION = "direction@spie74.example.org"
FT_ANNECY = "annecy@ft.example.org"
MOBILITE_ANNECY = "contact@mobilite-annecy.example.org"


# --- Helpers ------------------------------------------------------------------------------


def recipients(message: Message) -> set[str]:
    return {r.strip() for r in str(message["To"]).split(",")}


async def mail(parcours: Parcours, pathway_id: str, key: str, timeout: float = 15.0) -> EmailMessage:
    """The e-mail with this X-Parcours-Key, once received (parsed with the default policy)."""
    return await eventually(  # type: ignore[return-value]
        lambda: next((m for m in parcours.mail.about(pathway_id) if str(m["X-Parcours-Key"]) == key), None),
        timeout=timeout,
        what=f"e-mail {key}",
    )


def assert_no_duplicate_mail(parcours: Parcours, *pathway_ids: str) -> None:
    for pathway_id in pathway_ids:
        keys = parcours.mail.keys(pathway_id)
        assert len(keys) == len(set(keys)), f"e-mail sent twice for {pathway_id}: {sorted(keys)}"


def escalations(parcours: Parcours, pathway_id: str) -> list[Any]:
    return q.list_escalations(parcours.engine, pathway_id=pathway_id, status=None)


async def open_escalation(parcours: Parcours, pathway_id: str, level: int = 1) -> Any:
    return await eventually(
        lambda: next((e for e in escalations(parcours, pathway_id) if e.level == level and e.status == "open"), None),
        what=f"escalation level {level} of {pathway_id}",
    )


def task(parcours: Parcours, task_id: str) -> Any:
    found = q.get_task(parcours.engine, task_id=task_id)
    assert found is not None
    return found


# --- 1. Reminders, overdue, escalation levels ------------------------------------------------


async def test_reminders_then_overdue_then_escalation_levels(parcours: Parcours) -> None:
    parcours.publish(timed())  # reminder 1 s before a 2 s deadline, 1 s after; levels at +1 s, +2 s
    pathway_id = await parcours.start("test_timed")
    tache = parcours.open_task(pathway_id, "tache")
    assert tache.organisation_id == "ft_annecy"
    assert parcours.pathway(pathway_id).sla == "on_time"

    seen: list[str] = []

    def escalated_twice() -> bool:
        sla = parcours.pathway(pathway_id).sla
        if not seen or seen[-1] != sla:
            seen.append(sla)
        return len([e for e in escalations(parcours, pathway_id) if e.status == "open"]) == 2

    await eventually(escalated_twice, timeout=20, what="two escalation levels")
    order = ["on_time", "due_soon", "overdue", "escalated"]
    assert seen[0] == "on_time" and seen[-1] == "escalated", seen
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), f"SLA went backwards: {seen}"

    levels = escalations(parcours, pathway_id)
    assert [(e.level, e.to, e.status, e.task_id) for e in levels] == [
        (1, "gto", "open", tache.id),
        (2, "spie_direction", "open", tache.id),
    ]
    assert task(parcours, tache.id).escalation_level == 2

    prefix = f"{tache.id}:g0"
    level2 = await mail(parcours, pathway_id, f"{prefix}:escalated:2")
    assert recipients(level2) == {DIRECTION}
    assert "direction du SPIE" in str(level2["Subject"])
    level1 = await mail(parcours, pathway_id, f"{prefix}:escalated:1")
    assert recipients(level1) == {GTO_ANNECIEN, LEA}
    assert "Escalade au GTO Bassin annécien" in str(level1["Subject"])
    for kind in ("task_assigned:0", "reminder:0", "overdue:0", "reminder:1"):
        assert recipients(await mail(parcours, pathway_id, f"{prefix}:{kind}")) == {FT_ANNECY}
    keys = parcours.mail.keys(pathway_id)
    positions = [
        keys.index(f"{prefix}:{k}")
        for k in ("task_assigned:0", "reminder:0", "overdue:0", "escalated:1", "escalated:2")
    ]
    assert positions == sorted(positions), keys
    assert "Relance" in str((await mail(parcours, pathway_id, f"{prefix}:reminder:0"))["Subject"])
    assert "En retard" in str((await mail(parcours, pathway_id, f"{prefix}:overdue:0"))["Subject"])
    assert_no_duplicate_mail(parcours, pathway_id)


# --- 2. GTO decisions ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["reassign", "extend", "add_step", "close", "unblock"])
async def test_gto_decision_and_its_effects(parcours: Parcours, action: str) -> None:
    parcours.publish(fast("test_gto"))
    pathway_id = await parcours.start("test_gto")
    tache = parcours.open_task(pathway_id, "tache")
    escalation = await open_escalation(parcours, pathway_id)
    before = task(parcours, tache.id)
    assert before.sla == "escalated" and parcours.pathway(pathway_id).sla == "escalated"

    # Only the GTO lead of the pathway's basin decides.
    for outsider in (KARIM, JULIEN):
        with pytest.raises(ServiceError, match="Seul l'animateur du GTO") as refused:
            await parcours.service.decide_escalation(
                escalation_id=escalation.id,
                actor=parcours.service.actor_for(outsider),
                action="unblock",
            )
        assert refused.value.status == 403

    lea = parcours.service.actor_for(LEA)
    arguments: dict[str, Any] = {
        "reassign": {"organisation_id": "mobilite_annecy"},
        "extend": {"extend_by": "PT2S"},
        "add_step": {"module_id": "renfort"},
        "close": {"exit_reason": "abandon"},
        "unblock": {},
    }[action]
    decided_at = time.time()
    result = await parcours.service.decide_escalation(
        escalation_id=escalation.id,
        actor=lea,
        action=action,
        note="vu en GTO",
        **arguments,
    )
    assert action in result.message
    after, pathway = task(parcours, tache.id), parcours.pathway(pathway_id)

    # Every escalation of the task is decided (read-your-writes: before the update returned).
    decided = [e for e in escalations(parcours, pathway_id) if e.id == escalation.id][0]
    assert (decided.status, decided.action, decided.decided_by) == ("decided", action, lea.user_id)
    assert not q.list_escalations(parcours.engine, pathway_id=pathway_id, status="open")

    # Everyone concerned receives the decision.
    decision = await mail(parcours, pathway_id, f"{escalation.id}:decided")
    assert "Décision du GTO" in str(decision["Subject"])
    assert GTO_ANNECIEN in recipients(decision) and LEA in recipients(decision)

    if action == "close":
        assert (pathway.status, pathway.exit_reason) == ("closed", "abandon")
        assert after.status == "cancelled"
        assert not parcours.open_tasks(pathway_id)
    else:
        # The clock restarted: a new generation, a later deadline, back on time, reminders again.
        assert after.status == "open" and after.generation == 1 and after.escalation_level == 0
        assert after.due_at > before.due_at
        assert after.sla == "on_time" and pathway.sla == "on_time", (after.sla, pathway.sla)
        reminder = await mail(parcours, pathway_id, f"{tache.id}:g1:reminder:0")
        assert "Relance" in str(reminder["Subject"])
    if action == "reassign":
        assert after.organisation_id == "mobilite_annecy"
        inbox = q.list_tasks(parcours.engine, organisation_id="mobilite_annecy", pathway_id=pathway_id)
        assert [t.id for t in inbox] == [tache.id]
        assert not q.list_tasks(parcours.engine, organisation_id="ft_annecy", pathway_id=pathway_id)
        assigned = await mail(parcours, pathway_id, f"{tache.id}:g1:task_assigned:0")
        assert "Nouvelle tâche" in str(assigned["Subject"]) and recipients(assigned) == {MOBILITE_ANNECY}
        assert MOBILITE_ANNECY in recipients(decision)
    elif action == "extend":
        # max(now, old deadline) + 2 s: the old deadline is past, so about two seconds from the decision.
        assert after.due_at.timestamp() >= decided_at + 2 - 0.5
        assert FT_ANNECY in recipients(decision)
    elif action == "add_step":
        renfort = parcours.open_task(pathway_id, "renfort_tache")
        assert renfort.organisation_id == "departement74"
        assert renfort.id in result.opened
    elif action == "unblock":
        assert after.due_at.timestamp() >= decided_at + 1 - 0.5

    # A decided escalation cannot be decided again.
    with pytest.raises(ServiceError) as twice:
        await parcours.service.decide_escalation(escalation_id=escalation.id, actor=lea, action="unblock")
    assert twice.value.kind == "conflict"
    assert_no_duplicate_mail(parcours, pathway_id)


# --- 3. Reminders stop after completion ------------------------------------------------------


async def test_a_completed_task_gets_no_more_reminders(parcours: Parcours) -> None:
    # First reminder 1 s after the start, last escalation level at 3 s.
    parcours.publish(timed(reminder_after="PT0.5S", level1="PT0.5S", level2="PT0.5S", definition_id="test_stop"))
    done_id = await parcours.start("test_stop")
    done_task = parcours.open_task(done_id, "tache")
    await parcours.service.complete_task(
        task_id=done_task.id, actor=parcours.service.actor_for(JULIEN), outcome="fait", data={}
    )
    assert parcours.pathway(done_id).status == "closed"
    control_id = await parcours.start("test_stop")

    # The control pathway, started at the same time, goes through its whole chain...
    control_task = parcours.open_task(control_id, "tache")
    await mail(parcours, control_id, f"{control_task.id}:g0:escalated:2")
    # ...while the completed one only ever got its assignment.
    assert parcours.mail.keys(done_id) == [f"{done_task.id}:g0:task_assigned:0"]
    assert not escalations(parcours, done_id)
    assert task(parcours, done_task.id).status == "done"
    assert_no_duplicate_mail(parcours, done_id, control_id)


# --- 4. Joint accompaniment, first branch wins -----------------------------------------------


async def test_joint_accompaniment_any_cancels_the_other_branch(parcours: Parcours) -> None:
    parcours.publish(flow("any"))
    pathway_id = await parcours.start("test_flow")
    camille, julien = parcours.service.actor_for(CAMILLE), parcours.service.actor_for(JULIEN)
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "accueil").id, actor=camille, outcome="fait", data={"besoin": "emploi"}
    )
    referent_branch = parcours.open_task(pathway_id, "appui_referent")
    ft_branch = parcours.open_task(pathway_id, "appui_ft")

    await parcours.service.complete_task(task_id=ft_branch.id, actor=julien, outcome="fait", data={})
    assert task(parcours, ft_branch.id).status == "done"
    assert task(parcours, referent_branch.id).status == "cancelled"
    assert [t.step_id for t in parcours.open_tasks(pathway_id)] == ["suivi"]
    with pytest.raises(ServiceError, match="ouverte") as cancelled:
        await parcours.service.complete_task(task_id=referent_branch.id, actor=camille, outcome="fait", data={})
    assert cancelled.value.kind == "conflict"
    detail = q.pathway_detail(parcours.engine, pathway_id=pathway_id)
    assert detail is not None
    assert ("conjoint", "done") in [(s["step_id"], s["status"]) for s in detail["steps"]]
    await mail(parcours, pathway_id, f"{parcours.open_task(pathway_id, 'suivi').id}:g0:task_assigned:0")
    assert_no_duplicate_mail(parcours, pathway_id)


# --- 5. Modules added at run time ------------------------------------------------------------


async def test_module_added_at_run_time(parcours: Parcours) -> None:
    parcours.publish(flow("all"))
    pathway_id = await parcours.start("test_flow")
    camille, julien, lucas = (parcours.service.actor_for(e) for e in (CAMILLE, JULIEN, LUCAS))

    with pytest.raises(ServiceError, match="structure référente") as forbidden:
        await parcours.service.add_module(pathway_id=pathway_id, actor=julien, module_id="mobilite")
    assert forbidden.value.status == 403
    with pytest.raises(ServiceError, match="Module inconnu") as unknown:
        await parcours.service.add_module(pathway_id=pathway_id, actor=camille, module_id="logement")
    assert unknown.value.kind == "invalid"

    result = await parcours.service.add_module(
        pathway_id=pathway_id, actor=camille, module_id="mobilite", reason="pas de permis"
    )
    assert "Module mobilité" in result.message
    diag = parcours.open_task(pathway_id, "mobilite_diag")
    assert diag.organisation_id == "mobilite_annecy"
    assert {t.step_id for t in parcours.open_tasks(pathway_id)} == {"accueil", "mobilite_diag"}
    assert recipients(await mail(parcours, pathway_id, f"{diag.id}:g0:task_assigned:0")) == {MOBILITE_ANNECY}
    with pytest.raises(ServiceError, match="déjà en cours") as twice:
        await parcours.service.add_module(pathway_id=pathway_id, actor=camille, module_id="mobilite")
    assert twice.value.kind == "conflict"

    # One task after the other, beside the main flow.
    await parcours.service.complete_task(task_id=diag.id, actor=lucas, outcome="fait", data={})
    solution = parcours.open_task(pathway_id, "mobilite_solution")
    assert solution.organisation_id == "departement74"
    await parcours.service.complete_task(task_id=solution.id, actor=camille, outcome="fait", data={})
    assert [t.step_id for t in parcours.open_tasks(pathway_id)] == ["accueil"]
    assert parcours.pathway(pathway_id).status == "active"
    members = {m["organisation_id"] for m in q.pathway_detail(parcours.engine, pathway_id=pathway_id)["follow_up"]}  # type: ignore[index]
    assert "mobilite_annecy" in members
    await mail(parcours, pathway_id, f"{solution.id}:g0:task_assigned:0")
    assert_no_duplicate_mail(parcours, pathway_id)


# --- 6. Pause and resume -----------------------------------------------------------------


async def test_pause_stops_the_clock_and_resume_shifts_deadlines(parcours: Parcours) -> None:
    # First reminder 1 s after the start, escalation level 1 at 2.5 s.
    parcours.publish(timed(reminder_after="PT0.5S", level1="PT0.5S", level2="PT10S", definition_id="test_pause"))
    camille, julien = parcours.service.actor_for(CAMILLE), parcours.service.actor_for(JULIEN)
    paused_id = await parcours.start("test_pause")
    pause_started = time.monotonic()
    await parcours.service.pause(pathway_id=paused_id, actor=camille, reason="hospitalisation")
    pause_done = time.monotonic()
    control_id = await parcours.start("test_pause")
    paused_task = parcours.open_task(paused_id, "tache")
    with pytest.raises(ServiceError, match="structure référente"):
        await parcours.service.resume(pathway_id=paused_id, actor=julien)
    assert parcours.pathway(paused_id).status == "paused"
    with pytest.raises(ServiceError, match="suspendu") as rejected:
        await parcours.service.complete_task(task_id=paused_task.id, actor=julien, outcome="fait", data={})
    assert rejected.value.kind == "conflict"

    # The control pathway is escalated; the paused one got nothing after its assignment.
    control_task = parcours.open_task(control_id, "tache")
    await open_escalation(parcours, control_id)
    await mail(parcours, control_id, f"{control_task.id}:g0:escalated:1")
    assert parcours.mail.keys(paused_id) == [f"{paused_task.id}:g0:task_assigned:0"]
    assert not escalations(parcours, paused_id)
    assert task(parcours, paused_task.id).escalation_level == 0

    resume_started = time.monotonic()
    await parcours.service.resume(pathway_id=paused_id, actor=camille)
    resume_done = time.monotonic()
    assert parcours.pathway(paused_id).status == "active"
    shift = (task(parcours, paused_task.id).due_at - paused_task.due_at).total_seconds()
    assert resume_started - pause_done - 0.5 <= shift <= resume_done - pause_started + 0.5, shift
    # The clock runs again from where it stopped.
    await mail(parcours, paused_id, f"{paused_task.id}:g0:reminder:0")
    with pytest.raises(ServiceError, match="n'est pas suspendu"):
        await parcours.service.resume(pathway_id=paused_id, actor=camille)
    await parcours.service.complete_task(task_id=paused_task.id, actor=julien, outcome="fait", data={})
    assert parcours.pathway(paused_id).status == "closed"
    assert_no_duplicate_mail(parcours, paused_id, control_id)


# --- 7. Closing with an exit reason ----------------------------------------------------------


async def test_close_with_exit_reason_cancels_open_tasks(parcours: Parcours) -> None:
    parcours.publish(flow("all"))
    pathway_id = await parcours.start("test_flow")
    camille, julien = parcours.service.actor_for(CAMILLE), parcours.service.actor_for(JULIEN)
    await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "accueil").id, actor=camille, outcome="fait", data={"besoin": "emploi"}
    )
    await parcours.service.add_module(pathway_id=pathway_id, actor=camille, module_id="mobilite")
    open_before = parcours.open_tasks(pathway_id)
    assert {t.step_id for t in open_before} == {"appui_referent", "appui_ft", "mobilite_diag"}

    with pytest.raises(ServiceError, match="Motif de sortie inconnu") as unknown:
        await parcours.service.close(pathway_id=pathway_id, actor=camille, exit_reason="lassitude")
    assert unknown.value.kind == "invalid"
    with pytest.raises(ServiceError) as forbidden:
        await parcours.service.close(pathway_id=pathway_id, actor=julien, exit_reason="abandon")
    assert forbidden.value.status == 403
    assert parcours.pathway(pathway_id).status == "active"

    result = await parcours.service.close(
        pathway_id=pathway_id, actor=camille, exit_reason="demenagement", note="part en Bretagne"
    )
    assert "Déménagement" in result.message
    pathway = parcours.pathway(pathway_id)
    assert (pathway.status, pathway.exit_reason) == ("closed", "demenagement") and pathway.closed_at
    assert not parcours.open_tasks(pathway_id)
    assert {task(parcours, t.id).status for t in open_before} == {"cancelled"}

    # Nothing is accepted any more, whether the run is still finishing or already completed.
    refusals = [
        parcours.service.complete_task(task_id=open_before[0].id, actor=camille, outcome="fait", data={}),
        parcours.service.add_module(pathway_id=pathway_id, actor=camille, module_id="mobilite"),
        parcours.service.pause(pathway_id=pathway_id, actor=camille),
        parcours.service.close(pathway_id=pathway_id, actor=camille, exit_reason="abandon"),
    ]
    for refusal in refusals:
        with pytest.raises(ServiceError) as after_close:
            await refusal
        assert after_close.value.kind == "conflict", after_close.value.message
    handle = parcours.client.get_workflow_handle(pathway_id)
    await eventually(lambda: _status_is(handle, WorkflowExecutionStatus.COMPLETED), what="run completed")
    with pytest.raises(ServiceError, match="clos") as late:
        await parcours.service.resume(pathway_id=pathway_id, actor=camille)
    assert late.value.kind == "conflict"
    assert_no_duplicate_mail(parcours, pathway_id)


async def _run_changed(handle: Any, first_run: str) -> bool:
    return bool((await handle.describe()).run_id != first_run)


async def _status_is(handle: Any, status: WorkflowExecutionStatus) -> bool:
    return bool((await handle.describe()).status == status)


# --- 8. Versions are pinned ----------------------------------------------------------------


async def test_runs_keep_their_definition_version_after_a_new_publish(parcours: Parcours) -> None:
    v1 = flow("all")
    parcours.publish(v1)
    first_id = await parcours.start("test_flow")
    v2 = (
        v1.replace("title: Parcours de test", "title: Parcours de test révisé")
        .replace("title: Accueil\n", "title: Premier accueil\n")
        .replace("title: Appui France Travail", "title: Appui renforcé France Travail")
    )
    parcours.publish(v2)
    assert [d.version for d in q.list_definitions(parcours.engine) if d.id == "test_flow"] == [1, 2]
    second_id = await parcours.start("test_flow")

    assert parcours.pathway(first_id).definition_version == 1
    assert parcours.pathway(second_id).definition_version == 2
    assert parcours.open_task(first_id, "accueil").title == "Accueil"
    assert parcours.open_task(second_id, "accueil").title == "Premier accueil"

    camille = parcours.service.actor_for(CAMILLE)
    for pathway_id in (first_id, second_id):
        await parcours.service.complete_task(
            task_id=parcours.open_task(pathway_id, "accueil").id,
            actor=camille,
            outcome="fait",
            data={"besoin": "emploi"},
        )
    first_ft, second_ft = parcours.open_task(first_id, "appui_ft"), parcours.open_task(second_id, "appui_ft")
    assert (first_ft.title, second_ft.title) == ("Appui France Travail", "Appui renforcé France Travail")
    # E-mails speak of the version the pathway runs on.
    first_mail = await mail(parcours, first_id, f"{first_ft.id}:g0:task_assigned:0")
    second_mail = await mail(parcours, second_id, f"{second_ft.id}:g0:task_assigned:0")
    assert "Appui France Travail" in str(first_mail["Subject"])
    assert "(Parcours de test, bassin" in first_mail.get_content()
    assert "(Parcours de test révisé, bassin" in second_mail.get_content()
    assert_no_duplicate_mail(parcours, first_id, second_id)


# --- 9. Continue-as-new ----------------------------------------------------------------------


async def test_long_pathway_continues_as_new_and_completes(parcours: Parcours) -> None:
    service = parcours.service_continuing_as_new_after(100)
    parcours.publish(LOOP)
    pathway_id = await parcours.start("test_loop", service=service)
    handle = parcours.client.get_workflow_handle(pathway_id)
    first_run = (await handle.describe()).run_id
    camille = service.actor_for(CAMILLE)

    async def complete(n: int, outcome: str) -> str:
        open_tasks = parcours.open_tasks(pathway_id)
        assert [t.step_id for t in open_tasks] == ["boucle"], (n, open_tasks)
        result = await service.complete_task(task_id=open_tasks[0].id, actor=camille, outcome=outcome, data={})
        assert ("Terminé" if outcome == "fini" else "Encore un point") in result.message
        return result.opened[0] if result.opened else ""

    # A burst of updates, some arriving while the run drains its e-mails to continue as new:
    # every one is answered and none of its effects is lost.
    rounds = 40
    for n in range(rounds // 2):
        await complete(n, "encore")
    # Once the burst stops, the run continues as new at the first quiet moment.
    await eventually(lambda: _run_changed(handle, first_run), what="continue-as-new")
    # Then at a human pace (each assignment e-mail read before acting), across more new runs.
    for n in range(rounds // 2, rounds):
        opened = await complete(n, "encore")
        await mail(parcours, pathway_id, f"{opened}:g0:task_assigned:0")
    await complete(rounds, "fini")

    pathway = parcours.pathway(pathway_id)
    assert (pathway.status, pathway.exit_reason) == ("closed", "formation")
    await eventually(lambda: _status_is(handle, WorkflowExecutionStatus.COMPLETED), what="last run completed")
    last_run = (await handle.describe()).run_id
    assert last_run != first_run
    first = await parcours.client.get_workflow_handle(pathway_id, run_id=first_run).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW

    tasks = q.list_tasks(parcours.engine, pathway_id=pathway_id, status=None, limit=100)
    assert len(tasks) == rounds + 1 and {t.status for t in tasks} == {"done"}
    assert len({t.id for t in tasks}) == rounds + 1
    expected = {f"{t.id}:g0:task_assigned:0" for t in tasks}
    await eventually(lambda: set(parcours.mail.keys(pathway_id)) == expected, what="every assignment e-mailed once")
    assert_no_duplicate_mail(parcours, pathway_id)
    audit = [a["action"] for a in q.pathway_detail(parcours.engine, pathway_id=pathway_id)["audit"]]  # type: ignore[index]
    assert audit.count("task_completed") == rounds + 1 and audit.count("pathway_started") == 1


# --- 10. SMTP down -------------------------------------------------------------------------


async def test_smtp_down_retries_until_delivered(parcours: Parcours) -> None:
    parcours.publish(flow("all"))
    parcours.mail.refuse = True
    try:
        pathway_id = await parcours.start("test_flow")
        camille = parcours.service.actor_for(CAMILLE)
        await parcours.service.complete_task(
            task_id=parcours.open_task(pathway_id, "accueil").id,
            actor=camille,
            outcome="fait",
            data={"besoin": "emploi"},
        )

        def failed_twice() -> list[Any]:
            rows = q.list_notifications(parcours.engine, pathway_id=pathway_id)
            return rows if len(rows) == 3 and all(r.attempts >= 2 for r in rows) else []

        rows = await eventually(failed_twice, timeout=15, what="three e-mails retried")
        assert {r.status for r in rows} == {"pending"}
        assert all("451" in (r.last_error or "") for r in rows)
        assert not parcours.mail.about(pathway_id)
    finally:
        parcours.mail.refuse = False

    def all_sent() -> list[Any]:
        rows = q.list_notifications(parcours.engine, pathway_id=pathway_id)
        return rows if rows and all(r.status == "sent" for r in rows) else []

    rows = await eventually(all_sent, timeout=20, what="e-mails delivered once SMTP is back")
    assert len(rows) == 3 and all(r.attempts >= 3 and r.sent_at for r in rows)
    assert sorted(parcours.mail.keys(pathway_id)) == sorted(r.key for r in rows)
    subjects = sorted(str(m["Subject"]).split(" (")[0] for m in parcours.mail.about(pathway_id))
    assert subjects == [
        "[Parcours] Nouvelle tâche : Accueil",
        "[Parcours] Nouvelle tâche : Appui France Travail",
        "[Parcours] Nouvelle tâche : Appui du référent",
    ]
    assert_no_duplicate_mail(parcours, pathway_id)


# --- 11. Search attributes, no personal data in Temporal ------------------------------------------


def _history_text(history_json: str) -> str:
    """The history as text, with every payload decoded (payloads are base64 in the JSON)."""
    parts: list[str] = [history_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                with contextlib.suppress(ValueError):
                    parts.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(parts)


async def test_search_attributes_find_escalated_pathways_without_personal_data(parcours: Parcours) -> None:
    parcours.publish(fast("test_search"))
    pathway_id = await parcours.start("test_search")
    await open_escalation(parcours, pathway_id)

    async def listed() -> bool:
        query = 'ParcoursBasin = "annecien" AND ParcoursSla = "escalated"'
        return pathway_id in [w.id async for w in parcours.client.list_workflows(query)]

    await eventually(listed, timeout=15, what="pathway listed as escalated")
    description = await parcours.client.get_workflow_handle(pathway_id).describe()
    attributes = {key.name: value for key, value in description.typed_search_attributes}
    assert attributes["ParcoursSteps"] == ["tache"] and attributes["ParcoursDefinition"] == "test_search"
    assert attributes["ParcoursStatus"] == "active" and attributes["ParcoursStuckSince"] is not None

    person = q.get_pathway(parcours.engine, pathway_id=pathway_id)
    assert person is not None
    history = await parcours.client.get_workflow_handle(pathway_id).fetch_history()
    text = _history_text(history.to_json())
    assert person.person_id in text and "Tâche minutée" in text  # the payloads were decoded
    for personal in ("Alex", "Test"):
        assert personal not in text, f"personal data {personal!r} in the workflow history"
    assert_no_duplicate_mail(parcours, pathway_id)
