"""Working hours and the calendar as data, on a real worker: the behaviour change is made under a
patch (1.0.0 histories replay on the old path, new runs take the new one), the holiday table is the
run's own, pauses count working time, and a GTO cannot decide on a paused pathway."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from definitions.calendar import WorkCalendar, work_calendar
from definitions.durations import PARIS
from services.errors import ServiceError
from store import queries as q
from tests import replay_capture
from tests.conftest import Parcours, eventually
from tests.flows import fast
from worker.runner import workflow_runner
from workflows import search_attributes as sa
from workflows.patches import WORKING_HOURS
from workflows.pathway import PathwayWorkflow

V1 = Path(__file__).parent / "histories" / "v1.0.0"
CAMILLE = "camille.martin@example.org"


async def replay_deadlines(history: WorkflowHistory) -> list[tuple[str, Any, list[Any]]]:
    """Replay a history and return the deadlines and schedules its commits wrote."""
    replay_capture.COMMITS.clear()
    replayer = Replayer(
        workflows=[PathwayWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        interceptors=[replay_capture.CaptureCommits()],
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
    captured = replay_capture.deadlines(replay_capture.COMMITS)
    assert captured, "the replay wrote no task"
    return captured


def aware(moment: datetime) -> datetime:
    """The read model's moments in UTC (SQLite gives them back naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def at_closing_time(moment: datetime, closes: time = time(18, 0)) -> bool:
    return aware(moment).astimezone(PARIS).time() == closes


async def test_working_hours_are_a_patch_old_runs_keep_their_rules_new_runs_take_the_new(parcours: Parcours) -> None:
    # A 1.0.0 history of the same catalog pathway replays on the old path: its deadline kept the
    # wall-clock time of the start, 30 working days later.
    old = WorkflowHistory.from_json("v1", (V1 / "catalog_rsa_socio_pro_started.json").read_text())
    (item, due, _), *_ = await replay_deadlines(old)
    started = json.loads((V1 / "catalog_rsa_socio_pro_started.json").read_text())["events"][0]["eventTime"]
    assert not at_closing_time(due)
    assert due.astimezone(PARIS).time().replace(microsecond=0) == (
        datetime.fromisoformat(started.replace("Z", "+00:00")).astimezone(PARIS).time().replace(microsecond=0)
    )

    # A new run takes the new path: the deadline falls at the closing time, and the run lists the
    # patch it took in its search attributes.
    pathway_id = await parcours.start("rsa_socio_pro", by=CAMILLE)
    task = parcours.open_task(pathway_id, "orientation")
    assert at_closing_time(task.due_at)
    opened = aware(task.opened_at)
    assert aware(task.due_at) == work_calendar(opened.astimezone(PARIS).year).deadline(opened, 30)
    handle = parcours.client.get_workflow_handle(pathway_id)
    description = await handle.describe()
    assert WORKING_HOURS in (description.typed_search_attributes.get(sa.PATCHES) or [])
    new = await replay_deadlines(await handle.fetch_history())
    assert at_closing_time(new[0][1])


async def test_a_different_holiday_table_installed_replays_to_the_same_deadlines(
    parcours: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    pathway_id = await parcours.start("rsa_socio_pro", by=CAMILLE)
    history = await parcours.client.get_workflow_handle(pathway_id).fetch_history()
    recorded = await replay_deadlines(history)

    # Upgrade the holidays library to one where every weekday of the next two months is a holiday.
    import holidays

    import definitions.durations as durations

    invented = {date.today() + timedelta(days=n): "invented" for n in range(60)}
    monkeypatch.setattr(holidays, "country_holidays", lambda *a, **k: invented)
    monkeypatch.setattr(durations, "_PRECOMPUTED", {y: frozenset(invented) for y in range(2020, 2071)})
    assert await replay_deadlines(history) == recorded
    task = parcours.open_task(pathway_id, "orientation")
    assert recorded[0][1] == aware(task.due_at)  # and what the inbox shows


def injected(monkeypatch: pytest.MonkeyPatch, calendar: WorkCalendar) -> None:
    """New pathways get this calendar instead of the one computed from the holidays library."""
    import services.pathways

    monkeypatch.setattr(services.pathways, "work_calendar", lambda *a, **k: calendar)


DEUX_JOURS = """
id: deux_jours
title: Deux jours
status: active
basins: [all]
start: tache
steps:
  - kind: task
    id: tache
    title: Tâche en jours ouvrés
    role: referent
    deadline: 2 working days
    outcomes: [{id: fait, label: Fait, next: fin}]
  - {kind: end, id: fin, title: Fin}
"""


async def test_the_run_counts_with_its_own_calendar(parcours: Parcours, monkeypatch: pytest.MonkeyPatch) -> None:
    today = datetime.now(PARIS).date()
    tomorrow = today + timedelta(days=1)
    injected(
        monkeypatch,
        WorkCalendar(first_year=today.year, last_year=today.year + 1, holidays=[tomorrow], closes=time(17, 0)),
    )
    parcours.publish(DEUX_JOURS)
    pathway_id = await parcours.start("deux_jours")
    due = aware(parcours.open_task(pathway_id, "tache").due_at).astimezone(PARIS)
    # By hand: the second weekday after today, tomorrow (an injected holiday) excluded, at 17:00.
    day, counted = today, 0
    while counted < 2:
        day += timedelta(days=1)
        if day.weekday() < 5 and day != tomorrow:
            counted += 1
    assert (due.date(), due.time()) == (day, time(17, 0))


async def test_a_pause_outside_working_hours_does_not_move_the_deadline(
    parcours: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(PARIS).date()
    closed_month = [today + timedelta(days=n) for n in range(-1, 30)]  # no working time at all now
    injected(monkeypatch, WorkCalendar(first_year=today.year, last_year=today.year + 1, holidays=closed_month))
    parcours.publish(DEUX_JOURS)
    pathway_id = await parcours.start("deux_jours")
    before = parcours.open_task(pathway_id, "tache").due_at
    camille = parcours.service.actor_for(CAMILLE)
    await parcours.service.pause(pathway_id=pathway_id, actor=camille)
    await eventually(lambda: parcours.pathway(pathway_id).status == "paused", what="paused")
    await parcours.service.resume(pathway_id=pathway_id, actor=camille)
    assert parcours.open_task(pathway_id, "tache").due_at == before  # clock time alone would shift it


async def test_a_gto_cannot_decide_on_a_paused_pathway(parcours: Parcours) -> None:
    parcours.publish(fast(level2="PT1H"))
    pathway_id = await parcours.start("test_fast")
    escalation = await eventually(
        lambda: q.list_escalations(parcours.engine, pathway_id=pathway_id, status="open"), what="an escalation"
    )
    camille, lea = parcours.service.actor_for(CAMILLE), parcours.service.actor_for("lea.dupont@example.org")
    await parcours.service.pause(pathway_id=pathway_id, actor=camille)
    with pytest.raises(ServiceError, match="suspendu : la structure référente doit le reprendre") as refused:
        await parcours.service.decide_escalation(escalation_id=escalation[0].id, actor=lea, action="unblock")
    assert refused.value.status == 409
    assert q.list_escalations(parcours.engine, pathway_id=pathway_id, status="open")  # nothing decided
    await parcours.service.resume(pathway_id=pathway_id, actor=camille)
    result = await parcours.service.decide_escalation(escalation_id=escalation[0].id, actor=lea, action="unblock")
    assert "Décision enregistrée" in result.message


async def test_running_pathways_are_counted_per_patch(parcours: Parcours, monkeypatch: pytest.MonkeyPatch) -> None:
    from workflows.patches import CALENDAR_AT_CONTINUE_AS_NEW, running_per_patch

    parcours.publish(DEUX_JOURS)
    await parcours.start("deux_jours")  # a new run: takes the working-hours patch
    monkeypatch.setattr("services.pathways.work_calendar", lambda *a, **k: None)
    await parcours.start("deux_jours")  # as 1.0.0 started them: no calendar, the old branch

    async def counts() -> dict[str, tuple[int, int]] | None:
        usage = await running_per_patch(parcours.client, task_queue=parcours.settings.task_queue)
        found = {u.patch_id: (u.running_with, u.running_without) for u in usage}
        return found if found[WORKING_HOURS] == (1, 1) else None

    found = await eventually(counts, what="the patch counts")
    assert found[CALENDAR_AT_CONTINUE_AS_NEW] == (0, 2)


LOOP_IN_WORKING_DAYS = """
id: boucle_ouvree
title: Boucle en jours ouvrés
status: active
basins: [all]
start: boucle
steps:
  - kind: task
    id: boucle
    title: Point d'étape
    role: referent
    deadline: 2 working days
    outcomes:
      - {id: encore, label: Encore un point, next: boucle}
      - {id: fini, label: Terminé, next: fin}
  - {kind: end, id: fin, title: Fin, exit_reason: formation}
"""


async def test_a_pathway_started_without_a_calendar_gets_one_at_its_next_continue_as_new(
    parcours: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = parcours.service_continuing_as_new_after(100)
    parcours.publish(LOOP_IN_WORKING_DAYS)
    monkeypatch.setattr("services.pathways.work_calendar", lambda *a, **k: None)  # as 1.0.0 started it
    pathway_id = await parcours.start("boucle_ouvree", service=service)
    handle = parcours.client.get_workflow_handle(pathway_id)
    first_run = (await handle.describe()).run_id
    camille = service.actor_for(CAMILLE)
    assert not at_closing_time(parcours.open_task(pathway_id, "boucle").due_at)  # the 1.0.0 rule

    async def moved_on() -> bool:
        task = parcours.open_task(pathway_id, "boucle")
        await service.complete_task(task_id=task.id, actor=camille, outcome="encore", data={})
        return (await handle.describe()).run_id != first_run

    await eventually(moved_on, timeout=60, what="continue-as-new")
    # The next run has its own calendar: the next deadline falls at closing time.
    task = parcours.open_task(pathway_id, "boucle")
    await service.complete_task(task_id=task.id, actor=camille, outcome="encore", data={})
    assert at_closing_time(parcours.open_task(pathway_id, "boucle").due_at)
