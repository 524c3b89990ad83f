"""PathwayWorkflow: one generic, deterministic interpreter of any pathway definition.

Human work arrives as updates with validators; deadlines, reminders and escalation levels are
durable timers (one watcher coroutine per open item) that stop or restart the moment the item
changes. Every change is projected into the read model before an update returns."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from definitions.calendar import WorkCalendar
    from definitions.durations import TOO_LONG, Delay, too_long
    from definitions.migration import Landing, MigrationInputError, MigrationPlan, module_position, plan_migration
    from definitions.schema import (
        EXIT_REASONS,
        DecisionStep,
        EndStep,
        ParallelStep,
        TaskStep,
        WaitStep,
    )
    from workflows import search_attributes as sa
    from workflows.contract import (
        CALENDAR_ACTIVITY,
        COMMIT_ACTIVITY,
        NOTIFY_ACTIVITY,
        SYSTEM,
        Actor,
        AuditEntry,
        CalendarRequest,
        CommitBatch,
        Escalation,
        Item,
        ItemRow,
        ItemStatus,
        Notification,
        PathwayRow,
        ProjectionBatch,
        SlaState,
        TimerEvent,
    )
    from workflows.model import (
        AddModule,
        ClosePathway,
        CompleteTask,
        GtoDecision,
        MigrateDefinition,
        PathwayInput,
        PathwayOutcome,
        PathwayState,
        PauseClock,
        ReassignTask,
        ResumeClock,
        SkipStep,
        StepResult,
        UpdateResult,
    )
    from workflows.patches import (
        BOUNDED_COMMITS,
        CALENDAR_AT_CONTINUE_AS_NEW,
        COMMIT_AFTER_ACCEPTANCE,
        DIRECTION_DECIDES,
        WORKING_HOURS,
    )
    from workflows.projection import pathway_row

PROJECTION_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
# SMTP down means retry with backoff until it is back, never loss.
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)
# Bounded commits (patch `bounded-commits`): the local write retries within its budget, then a regular
# activity retries durably (backing off as the run's input says: 5 s to 10 min), without adding
# history events per attempt.
LOCAL_COMMIT_FIRST, LOCAL_COMMIT_LONGEST = 0.2, 5.0
LOCAL_COMMIT_ATTEMPT = timedelta(seconds=5)
LOCAL_COMMIT_SLICE = 5.0
LOCAL_COMMIT_PAUSE = timedelta(seconds=1)


def local_commit_retry(budget_seconds: float) -> RetryPolicy:
    """Local attempts whose waits add up to the budget. The SDK does not end a retrying local
    activity at its schedule-to-close timeout (measured with temporalio 1.35), so the budget is
    an attempt count; each attempt is cut at 5 s (a hung connection)."""
    attempts, waited, wait = 1, 0.0, LOCAL_COMMIT_FIRST
    while waited + wait <= budget_seconds:
        attempts, waited, wait = attempts + 1, waited + wait, min(wait * 2, LOCAL_COMMIT_LONGEST)
    return RetryPolicy(
        initial_interval=timedelta(seconds=LOCAL_COMMIT_FIRST),
        maximum_interval=timedelta(seconds=LOCAL_COMMIT_LONGEST),
        maximum_attempts=attempts,
    )


RECORDED_DISPLAY_FOLLOWS = "Enregistré ; l'affichage suivra dès que la base de lecture répondra."
MAX_AUTOMATIC_STEPS = 100


def reject(message: str, kind: str = "conflict") -> ApplicationError:
    """A refusal the user must read; retrying cannot help. `kind` (forbidden, invalid, conflict,
    not_found) lets the API choose its status code."""
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn(name="PathwayWorkflow")
class PathwayWorkflow:
    @workflow.init
    def __init__(self, input: PathwayInput) -> None:
        self.input = input
        self.definition = input.definition
        now = workflow.now()
        self.state = input.carried or PathwayState(started_at=now, last_progress_at=now)
        self._lock = asyncio.Lock()
        self._ready = False
        self._dirty_items: dict[str, Item] = {}
        self._dirty_escalations: set[str] = set()
        self._audit: list[AuditEntry] = []
        self._outbox: list[Notification] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._search_values: dict[str, Any] = {}
        self._patches: set[str] = set()
        # Bounded commits: handlers and timers ask for a write (`_requested`), one committer
        # coroutine writes everything asked so far (`_written`), coalescing during an outage.
        self._bounded = False
        self._requested = 0
        self._written = 0
        self._retry_requested = False
        self._failure: BaseException | None = None
        # Patch `commit-after-acceptance`: an update's changes are written once the workflow task
        # that accepted it is complete (`_unsettled`: an update changed state since the last batch).
        self._after_acceptance = False
        self._unsettled = False

    # --- Run ---------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: PathwayInput) -> PathwayOutcome:
        self._bounded = self._patched(BOUNDED_COMMITS)
        if self._bounded:
            self._after_acceptance = self._patched(COMMIT_AFTER_ACCEPTANCE)
            self._supervise(asyncio.create_task(self._committer()))
        async with self._lock:
            if input.carried is None:
                self._record(
                    input.started_by,
                    "pathway_started",
                    None,
                    {
                        "definition": f"{self.definition.id} v{self.definition.version}",
                    },
                )
                self._add_to_follow_up(input.referent_org)
                self._enter(self.definition.start)
            await self._commit()
            self._ready = True
        for item_id in list(self.state.items):
            self._start_watcher(item_id)
        await self._until(lambda: self.state.status == "closed" or self._history_is_long() or self._migrated)
        if self.state.status != "closed":
            await self._refresh_calendar()
        # An update may arrive while e-mails drain or the read model catches up: finish it too, so
        # that nothing it changed, projected or sent is lost, and its caller gets its answer, before
        # the run ends.
        while True:
            await self._until(
                lambda: (
                    workflow.all_handlers_finished() and not self._lock.locked() and self._written >= self._requested
                )
            )
            if not self._sends:
                break
            await self._drain_sends()
        if self.state.status != "closed":
            # The definition is the run's own (a migration swaps it; unchanged otherwise).
            workflow.continue_as_new(
                self.input.model_copy(update={"carried": self.state, "definition": self.definition})
            )
        return PathwayOutcome(
            pathway_id=input.pathway_id, exit_reason=self.state.exit_reason, closed_at=self.state.closed_at
        )

    async def _until(self, condition: Any) -> None:
        """`workflow.wait_condition`, except that a crashed timer or committer coroutine raises here:
        the workflow task fails and Temporal retries it (an incident), never a silent death."""
        await workflow.wait_condition(lambda: self._failure is not None or condition())
        if self._failure is not None:
            raise RuntimeError(f"coroutine du parcours en échec : {self._failure!r}") from self._failure

    def _supervise(self, task: asyncio.Task[None]) -> None:
        """Watch a background coroutine (a bounded run's timers and committer): its exception is
        raised by the run (see `_until`)."""

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None and self._failure is None:
                self._failure = task.exception()

        task.add_done_callback(done)

    async def _refresh_calendar(self) -> None:
        """Before continuing as new: a run started on 1.0.0 gets a calendar, and a calendar about
        to run out is renewed (computed by the worker, so it reaches the next run as data)."""
        calendar = self.input.calendar
        year = workflow.now().year
        if calendar is not None and calendar.covers(year + 1):
            return
        if not self._patched(CALENDAR_AT_CONTINUE_AS_NEW):
            return
        renewed: WorkCalendar = await workflow.execute_local_activity(
            CALENDAR_ACTIVITY,
            CalendarRequest(
                first_year=year,
                opens=calendar.opens if calendar else None,
                closes=calendar.closes if calendar else None,
            ),
            result_type=WorkCalendar,
            start_to_close_timeout=timedelta(seconds=30),
        )
        self.input = self.input.model_copy(update={"calendar": renewed})

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > self.input.history_event_limit

    # --- Queries -----------------------------------------------------------------------------

    @workflow.query
    def state_view(self) -> PathwayState:
        return self.state

    # --- Updates -----------------------------------------------------------------------------

    @workflow.update
    async def ready(self) -> str:
        """Returns once the pathway's first steps are in the read model (a bounded run waits
        `answer_within_seconds` at most: the pathway then shows as soon as the read model answers)."""
        await workflow.wait_condition(lambda: self._ready)
        if self._bounded:
            await self._answer(self._result("", []))
        return self.input.pathway_id

    @workflow.update
    async def complete_task(self, command: CompleteTask) -> UpdateResult:
        async with self._locked():
            item, task = self._check_complete(command)
            self._close_item(item, "done", outcome=command.outcome)
            item.submission_id = command.submission_id
            self.state.results[item.step_id] = StepResult(outcome=command.outcome, routing=command.routing)
            self._record(command.actor, "task_completed", item, {"outcome": command.outcome})
            outcome = task.outcome(command.outcome)
            opened = self._after(item, outcome.next if outcome else None)
            await self._commit()
            label = outcome.label if outcome else command.outcome
            answer = self._result(f"Tâche « {item.title} » terminée : {label}.", opened)
        return await self._answer(answer)

    @complete_task.validator
    def _validate_complete(self, command: CompleteTask) -> None:
        self._check_complete(command)

    def _check_complete(self, command: CompleteTask) -> tuple[Item, TaskStep]:
        item = self._open_task(command.item_id)
        self._check_org(command.actor, item.organisation_id, "traiter cette tâche")
        task = self.definition.task(item.step_id)
        if task.outcome(command.outcome) is None:
            known = ", ".join(o.id for o in task.outcomes)
            raise reject(
                f"Issue inconnue « {command.outcome} » pour « {task.title} » (possibles : {known}).", "invalid"
            )
        missing = [f.label for f in task.form if f.required and f.id not in command.filled]
        if missing:
            raise reject("Champ obligatoire manquant : " + ", ".join(f"« {m} »" for m in missing) + ".", "invalid")
        return item, task

    @workflow.update
    async def reassign_task(self, command: ReassignTask) -> UpdateResult:
        async with self._locked():
            item = self._check_reassign(command)
            previous = item.organisation_id or ""
            self._reassign(item, command.organisation_id)
            self._record(
                command.actor,
                "task_reassigned",
                item,
                {
                    "from": previous,
                    "to": command.organisation_id,
                    **self._note(command.note_id),
                },
            )
            await self._commit()
            answer = self._result(f"Tâche « {item.title} » réattribuée à {command.organisation_id}.", [item.id])
        return await self._answer(answer)

    @reassign_task.validator
    def _validate_reassign(self, command: ReassignTask) -> None:
        self._check_reassign(command)

    def _check_reassign(self, command: ReassignTask) -> Item:
        item = self._open_task(command.item_id)
        self._check_org(command.actor, item.organisation_id, "réattribuer cette tâche", referent_too=True)
        if command.organisation_id == item.organisation_id:
            raise reject("La tâche est déjà confiée à cette organisation.")
        return item

    @workflow.update
    async def add_module(self, command: AddModule) -> UpdateResult:
        async with self._locked():
            self._check_add_module(command)
            opened = self._start_module(command.module_id)
            self._record(
                command.actor, "module_added", None, {"module": command.module_id, **self._note(command.note_id)}
            )
            await self._commit()
            module = self.definition.module(command.module_id)
            answer = self._result(f"Module « {module.title if module else command.module_id} » ajouté.", opened)
        return await self._answer(answer)

    @add_module.validator
    def _validate_add_module(self, command: AddModule) -> None:
        self._check_add_module(command)

    def _check_add_module(self, command: AddModule) -> None:
        self._check_active()
        if command.actor.organisation_id != self.input.referent_org and command.actor.role != "admin":
            raise reject("Seule la structure référente peut ajouter un module au parcours.", "forbidden")
        self._check_module(command.module_id)

    def _check_module(self, module_id: str | None) -> None:
        if module_id is None or self.definition.module(module_id) is None:
            known = ", ".join(m.id for m in self.definition.modules) or "aucun"
            raise reject(f"Module inconnu « {module_id} » (modules de ce parcours : {known}).", "invalid")
        if module_id in self.state.modules:
            raise reject(f"Le module « {module_id} » est déjà en cours dans ce parcours.")

    @workflow.update
    async def skip_step(self, command: SkipStep) -> UpdateResult:
        async with self._locked():
            item, task = self._check_skip(command)
            self._close_item(item, "skipped")
            self._record(command.actor, "step_skipped", item, self._note(command.note_id))
            opened = self._after(item, task.skip_to)
            await self._commit()
            answer = self._result(f"Étape « {item.title} » passée.", opened)
        return await self._answer(answer)

    @skip_step.validator
    def _validate_skip(self, command: SkipStep) -> None:
        self._check_skip(command)

    def _check_skip(self, command: SkipStep) -> tuple[Item, TaskStep]:
        item = self._open_task(command.item_id)
        self._check_org(command.actor, item.organisation_id, "passer cette étape", referent_too=True)
        task = self.definition.task(item.step_id)
        if not task.optional:
            raise reject(f"L'étape « {task.title} » n'est pas facultative : elle ne peut pas être passée.")
        return item, task

    @workflow.update
    async def pause(self, command: PauseClock) -> UpdateResult:
        async with self._locked():
            self._check_pause(command)
            self.state.status = "paused"
            self.state.paused_since = workflow.now()
            self._touch_open_items()
            self._record(command.actor, "pathway_paused", None, self._note(command.note_id))
            await self._commit()
            answer = self._result("Parcours suspendu : les délais sont arrêtés.", [])
        return await self._answer(answer)

    @pause.validator
    def _validate_pause(self, command: PauseClock) -> None:
        self._check_pause(command)

    def _check_pause(self, command: PauseClock) -> None:
        self._check_active()
        self._check_referent(command.actor, "suspendre le parcours")

    @workflow.update
    async def resume(self, command: ResumeClock) -> UpdateResult:
        async with self._locked():
            self._check_resume(command)
            assert self.state.paused_since is not None
            shift = workflow.now() - self.state.paused_since
            calendar = self._calendar()
            for item in self.state.items.values():
                if calendar is not None and self._on_working_days(item):
                    # Working-day clocks lose only the working time the pause covered.
                    worked = calendar.working_time_between(self.state.paused_since, workflow.now())
                    item.due_at = calendar.add_working_time(item.due_at, worked) if item.due_at else None
                    item.schedule = [
                        e.model_copy(update={"at": calendar.add_working_time(e.at, worked)}) for e in item.schedule
                    ]
                else:
                    item.due_at = item.due_at + shift if item.due_at else None
                    item.schedule = [e.model_copy(update={"at": e.at + shift}) for e in item.schedule]
            self.state.status = "active"
            self.state.paused_since = None
            self._touch_open_items()
            self._record(command.actor, "pathway_resumed", None, {"paused_seconds": f"{shift.total_seconds():.0f}"})
            await self._commit()
            answer = self._result("Parcours repris : les délais sont décalés de la durée de la suspension.", [])
        return await self._answer(answer)

    @resume.validator
    def _validate_resume(self, command: ResumeClock) -> None:
        self._check_resume(command)

    def _check_resume(self, command: ResumeClock) -> None:
        if self.state.status != "paused":
            raise reject("Le parcours n'est pas suspendu.")
        self._check_referent(command.actor, "reprendre le parcours")

    @workflow.update
    async def close(self, command: ClosePathway) -> UpdateResult:
        async with self._locked():
            self._check_close(command)
            self._close_pathway(command.exit_reason)
            self._record(
                command.actor,
                "pathway_closed",
                None,
                {"exit_reason": command.exit_reason, **self._note(command.note_id)},
            )
            await self._commit()
            answer = self._result(f"Parcours clos : {EXIT_REASONS[command.exit_reason]}.", [])
        return await self._answer(answer)

    @close.validator
    def _validate_close(self, command: ClosePathway) -> None:
        self._check_close(command)

    def _check_close(self, command: ClosePathway) -> None:
        if self.state.status == "closed":
            raise reject("Le parcours est déjà clos.")
        self._check_referent(command.actor, "clore le parcours")
        self._check_exit_reason(command.exit_reason)

    @workflow.update
    async def decide_escalation(self, command: GtoDecision) -> UpdateResult:
        async with self._locked():
            escalation, item = self._check_decision(command)
            if command.actor.role == "direction":
                self._patched(DIRECTION_DECIDES)  # a run the direction decided in marks it
            now = workflow.now()
            for other in self.state.escalations.values():
                if other.item_id == item.id and other.status == "open":
                    other.status, other.decided_at, other.decided_by = "decided", now, command.actor.user_id
                    other.action, other.note_id = command.action, command.note_id
                    self._dirty_escalations.add(other.id)
            self._record(
                command.actor,
                "escalation_decided",
                item,
                {
                    "escalation": escalation.id,
                    "action": command.action,
                    **self._note(command.note_id),
                },
            )
            opened: list[str] = []
            if command.action == "close":
                assert command.exit_reason is not None
                self._close_pathway(command.exit_reason)
            elif command.action == "reassign":
                assert command.organisation_id is not None
                self._reassign(item, command.organisation_id)
                opened = [item.id]
            elif command.action == "extend":
                assert command.extend_by is not None
                delay = Delay.model_validate(command.extend_by)
                due = max(now, item.due_at or now)
                self._restart_clock(item, due=self._deadline(delay, due))
            else:
                if command.action == "add_step":
                    assert command.module_id is not None
                    opened = self._start_module(command.module_id)
                self._restart_clock(item)
            self._notify(
                Notification(
                    key=f"{escalation.id}:decided",
                    kind="escalation_decided",
                    pathway_id=self.input.pathway_id,
                    definition_title=self.definition.title,
                    item_id=item.id,
                    step_title=item.title,
                    organisation_id=item.organisation_id,
                    basin_id=self.input.basin_id,
                    level=escalation.level,
                    due_at=item.due_at,
                    action=command.action,
                )
            )
            await self._commit()
            answer = self._result(f"Décision enregistrée ({command.action}).", opened)
        return await self._answer(answer)

    @decide_escalation.validator
    def _validate_decision(self, command: GtoDecision) -> None:
        # A new refusal lives in the validator only: validators do not run on replay, so a
        # decision 1.0.0 accepted on a paused pathway still replays through the handler.
        if self.state.status == "paused":
            raise reject(
                "Le parcours est suspendu : la structure référente doit le reprendre avant une décision du GTO."
            )
        self._check_decision(command)
        if command.action == "extend" and too_long(Delay.model_validate(command.extend_by)):
            raise reject(f"Prolongation refusée : {TOO_LONG}.", "invalid")

    def _check_decision(self, command: GtoDecision) -> tuple[Escalation, Item]:
        escalation = self.state.escalations.get(command.escalation_id)
        if escalation is None:
            raise reject(f"Escalade inconnue « {command.escalation_id} ».", "not_found")
        if escalation.status != "open":
            raise reject("Cette escalade a déjà été traitée.")
        actor = command.actor
        direction = actor.role == "direction" and escalation.level >= 2
        if not (
            actor.role == "admin" or direction or (actor.role == "gto_lead" and actor.basin_id == self.input.basin_id)
        ):
            raise reject(
                "Seul l'animateur du GTO du bassin (ou la direction du SPIE) peut décider de cette escalade.",
                "forbidden",
            )
        item = self.state.items.get(escalation.item_id)
        if item is None or item.status != "open":
            raise reject("La tâche escaladée n'est plus ouverte.")
        if command.action == "reassign":
            if not command.organisation_id:
                raise reject("Indiquez l'organisation à qui confier la tâche.", "invalid")
            if command.organisation_id == item.organisation_id:
                raise reject("La tâche est déjà confiée à cette organisation.")
        elif command.action == "extend":
            if not command.extend_by:
                raise reject("Indiquez la prolongation du délai (par ex. « 5 jours ouvrés »).", "invalid")
            try:
                Delay.model_validate(command.extend_by)
            except ValueError:
                raise reject(
                    f"Prolongation invalide « {command.extend_by} » : écrivez « 5 jours ouvrés » ou une durée ISO 8601.",
                    "invalid",
                ) from None
        elif command.action == "add_step":
            self._check_module(command.module_id)
        elif command.action == "close":
            self._check_exit_reason(command.exit_reason)
        return escalation, item

    # --- Moving to another version of the definition -------------------------------------------
    # A new update (old histories never call it): open items land on the new version's steps with
    # their ids, deadlines, schedules, fired events and generations (clocks are kept), then the run
    # continues as new on the new definition.

    _migrated: bool = False
    """Set once a migration is committed: the run then continues as new on the new definition."""

    @workflow.update
    async def migrate_definition(self, command: MigrateDefinition) -> UpdateResult:
        async with self._locked():
            plan = self._check_migration(command)
            new = command.definition
            landings = {(lg.step_id, lg.kind, lg.track): lg for lg in plan.landings}
            # Compute everything first, then mutate: a handler never half-applies.
            moved: list[tuple[Item, Landing]] = []
            for item in self.state.items.values():
                landing = landings.get((item.step_id, item.kind, item.track))
                if landing is None:
                    if item.kind in ("task", "wait", "group"):
                        raise ApplicationError(f"no landing for open item {item.id}", non_retryable=True)
                    continue
                moved.append((item, landing))
            results = {plan.results_map.get(k, k): v for k, v in self.state.results.items()}
            modules = dict(self.state.modules)
            for item, landing in moved:
                if item.kind == "task" and item.track.startswith("module:"):
                    module_id = item.track.removeprefix("module:")
                    modules[module_id] = module_position(new, module_id, landing.to_step)
            chains = {
                item.id: len(new.escalation_for(new.task(landing.to_step)))
                for item, landing in moved
                if item.kind == "task"
            }
            previous = self.definition
            for item, landing in moved:
                renamed = item.step_id != landing.to_step
                item.step_id, item.title, item.group = landing.to_step, landing.title, landing.group
                if item.id in chains:  # escalation levels the new version no longer has are dropped
                    item.schedule = [e for e in item.schedule if e.kind != "escalation" or e.n <= chains[item.id]]
                item.revision += 1
                self._dirty_items[item.id] = item
                if renamed:
                    for escalation in self.state.escalations.values():
                        if escalation.item_id == item.id:
                            escalation.step_id = landing.to_step
                            self._dirty_escalations.add(escalation.id)
            self.state.results, self.state.modules = results, modules
            self.definition = new
            self.input = self.input.model_copy(update={"definition": new})
            self._record(
                command.actor,
                "definition_migrated",
                None,
                {
                    "from": f"{previous.id} v{previous.version}",
                    "to": f"{new.id} v{new.version}",
                    **self._note(command.note_id),
                },
            )
            self._migrated = True
            await self._commit()
            answer = self._result(
                f"Parcours déplacé de la version {previous.version} à la version {new.version} de « {new.title} ».",
                [item.id for item, _ in moved],
            )
        return await self._answer(answer)

    @migrate_definition.validator
    def _validate_migration(self, command: MigrateDefinition) -> None:
        self._check_migration(command)

    def _check_migration(self, command: MigrateDefinition) -> MigrationPlan:
        if command.actor.role not in ("admin", "system"):
            raise reject("Seul un administrateur peut déplacer un parcours vers une autre version.", "forbidden")
        if self.state.status == "closed":
            raise reject("Le parcours est clos : il reste sur sa version.")
        new = command.definition
        if new.id != self.definition.id:
            raise reject(
                f"La version cible est celle d'un autre parcours (« {new.id} », et non « {self.definition.id} »).",
                "invalid",
            )
        if (new.version or 0) <= (self.definition.version or 0):
            raise reject(
                f"Le parcours est déjà sur la version {self.definition.version} : "
                f"la version {new.version} n'est pas plus récente."
            )
        if self._migrated:
            raise reject("Le parcours vient de changer de version : réessayez dans un instant.")
        open_items = [(i.step_id, i.kind, i.track) for i in self.state.items.values()]
        try:
            plan = plan_migration(self.definition, new, command.step_map, open_items)
        except MigrationInputError as error:
            raise reject(error.message, error.kind) from None
        if not plan.ok:
            raise reject(" ".join(plan.refusals))
        return plan

    # --- Checks shared by validators and handlers ---------------------------------------------

    def _locked(self) -> _ReadyLock:
        return _ReadyLock(self)

    def _check_active(self) -> None:
        if self.state.status == "closed":
            raise reject("Le parcours est clos.")
        if self.state.status == "paused":
            raise reject("Le parcours est suspendu : reprenez-le d'abord.")

    def _open_task(self, item_id: str) -> Item:
        self._check_active()
        item = self.state.items.get(item_id)
        if item is None:
            raise reject(
                f"La tâche « {item_id} » n'est pas ouverte dans ce parcours (déjà traitée, annulée ou inconnue)."
            )
        if item.kind != "task":
            raise reject(f"« {item.title} » n'est pas une tâche humaine.", "invalid")
        return item

    def _check_org(self, actor: Actor, organisation_id: str | None, what: str, *, referent_too: bool = False) -> None:
        allowed = {organisation_id}
        if referent_too:
            allowed.add(self.input.referent_org)
        if actor.organisation_id not in allowed and actor.role != "admin":
            raise reject(
                f"Votre organisation ({actor.organisation_id}) ne peut pas {what} : elle est confiée à {organisation_id}.",
                "forbidden",
            )

    def _check_referent(self, actor: Actor, what: str) -> None:
        if actor.organisation_id != self.input.referent_org and actor.role != "admin":
            raise reject(f"Seule la structure référente ({self.input.referent_org}) peut {what}.", "forbidden")

    @staticmethod
    def _check_exit_reason(reason: str | None) -> None:
        if reason not in EXIT_REASONS:
            raise reject(f"Motif de sortie inconnu « {reason} » (possibles : {', '.join(EXIT_REASONS)}).", "invalid")

    # --- Interpreting the definition ----------------------------------------------------------

    def _enter(self, step_id: str, track: str = "main", depth: int = 0) -> list[str]:
        """Enter a main-flow step; return the ids of the items it opened."""
        if depth > MAX_AUTOMATIC_STEPS:  # decisions chained without a task (the loader forbids such cycles)
            raise ApplicationError(f"automatic steps loop at '{step_id}'", non_retryable=True)
        step = self.definition.step(step_id)
        if isinstance(step, TaskStep):
            return [self._open_task_item(step, track=track)]
        if isinstance(step, ParallelStep):
            group = self._new_item(step.id, step.title, "group")
            return [group.id] + [self._open_task_item(b, track=track, group=step.id) for b in step.branches]
        if isinstance(step, WaitStep):
            wait = self._new_item(step.id, step.title, "wait")
            wait.due_at = step.duration.add_to(wait.opened_at, self._calendar())
            wait.schedule = [TimerEvent(at=wait.due_at, kind="wait_over")]
            self._start_watcher(wait.id)
            return [wait.id]
        if isinstance(step, DecisionStep):
            decision = self._new_item(step.id, step.title, "decision")
            target = self._decide(step)
            self._close_item(decision, "done", outcome=target)
            return self._enter(target, depth=depth + 1)
        assert isinstance(step, EndStep)
        end = self._new_item(step.id, step.title, "end")
        self._close_item(end, "done", outcome=step.exit_reason)
        self._record(SYSTEM, "pathway_closed", None, {"exit_reason": step.exit_reason})
        self._close_pathway(step.exit_reason)
        return []

    def _decide(self, step: DecisionStep) -> str:
        source, _, field = step.based_on.partition(".")
        result = self.state.results.get(source)
        value = None
        if result is not None:
            value = result.routing.get(field) if field else result.outcome
        for case in step.cases:
            if value is not None and str(case.when) == value:
                return case.next
        assert step.default is not None
        return step.default

    def _after(self, item: Item, next_step: str | None) -> list[str]:
        """Move on once an item is finished (done or skipped)."""
        self.state.last_progress_at = workflow.now()
        if item.group is not None:
            return self._after_branch(item.group)
        if item.track.startswith("module:"):
            return self._next_module_step(item.track.removeprefix("module:"))
        if next_step is None:
            return []
        return self._enter(next_step)

    def _after_branch(self, group_step: str) -> list[str]:
        spec = self.definition.step(group_step)
        assert isinstance(spec, ParallelStep)
        siblings = [i for i in self.state.items.values() if i.group == group_step]
        if spec.completion == "all" and siblings:
            return []
        for sibling in siblings:
            self._close_item(sibling, "cancelled")
        group = next(i for i in self.state.items.values() if i.kind == "group" and i.step_id == group_step)
        self._close_item(group, "done")
        return self._enter(spec.next)

    def _start_module(self, module_id: str) -> list[str]:
        self.state.modules[module_id] = 0
        return self._next_module_step(module_id)

    def _next_module_step(self, module_id: str) -> list[str]:
        module = self.definition.module(module_id)
        assert module is not None
        index = self.state.modules.get(module_id, len(module.steps))
        if index >= len(module.steps):
            self.state.modules.pop(module_id, None)
            return []
        self.state.modules[module_id] = index + 1
        return [self._open_task_item(module.steps[index], track=f"module:{module_id}")]

    # --- Items, clocks and timers --------------------------------------------------------------

    def _new_item(self, step_id: str, title: str, kind: Any, **extra: Any) -> Item:
        self.state.seq += 1
        item = Item(
            id=f"{self.input.pathway_id}-{self.state.seq}",
            step_id=step_id,
            title=title,
            kind=kind,
            opened_at=workflow.now(),
            **extra,
        )
        self.state.items[item.id] = item
        self._dirty_items[item.id] = item
        return item

    def _open_task_item(self, task: TaskStep, *, track: str, group: str | None = None) -> str:
        organisation = self._resolve(task.role)
        item = self._new_item(task.id, task.title, "task", track=track, group=group, organisation_id=organisation)
        self._add_to_follow_up(organisation)
        self._restart_clock(item, new_assignment=True)
        self._start_watcher(item.id)
        return item.id

    def _resolve(self, role: str) -> str:
        if role == "referent":
            return self.input.referent_org
        if role.startswith("organisation:"):
            return role.removeprefix("organisation:")
        organisation = self.input.parties.get(role)
        if organisation is None:
            raise ApplicationError(f"no organisation resolved for role '{role}'", non_retryable=True)
        return organisation

    def _reassign(self, item: Item, organisation_id: str) -> None:
        item.organisation_id = organisation_id
        self._add_to_follow_up(organisation_id)
        self._restart_clock(item, new_assignment=True)

    def _restart_clock(self, item: Item, *, due: datetime | None = None, new_assignment: bool = False) -> None:
        """(Re)compute deadline, reminders and escalation levels from now. A new generation gets
        fresh notification keys, so reminders restart after a reassignment or an extension."""
        if item.revision:  # not a fresh item: a new generation of its clock
            item.generation += 1
        item.revision += 1
        item.fired, item.escalation_level = [], 0
        self._resolve_escalations(item)
        task = self.definition.task(item.step_id)
        start = workflow.now()
        if due is None:
            due = self._deadline(task.deadline, start) if task.deadline else None
        item.due_at = due
        item.schedule = _schedule(task, self.definition.escalation_for(task), start, due, self._calendar())
        item.fired = [e.key for e in item.schedule if e.at < start]
        self._dirty_items[item.id] = item
        if new_assignment:
            self._notify(self._notification(item, "task_assigned", 0))

    def _calendar(self) -> WorkCalendar | None:
        """The run's calendar if it follows the working-hours rules; None for a run started on
        1.0.0 (wall-clock deadlines from the installed holidays library, until continue-as-new)."""
        if self.input.calendar is None or not self._patched(WORKING_HOURS):
            return None
        return self.input.calendar

    def _deadline(self, delay: Delay, start: datetime) -> datetime:
        """N working days end at the closing time of the N-th working day; ISO delays are exact."""
        calendar = self._calendar()
        if calendar is not None and delay.working_days is not None:
            return calendar.deadline(start, delay.working_days)
        return delay.add_to(start)

    def _on_working_days(self, item: Item) -> bool:
        """Whether an item's clock counts working days (its deadline or duration is in them)."""
        if item.kind == "task":
            deadline = self.definition.task(item.step_id).deadline
            return deadline is not None and deadline.working_days is not None
        step = self.definition.step(item.step_id)
        return isinstance(step, WaitStep) and step.duration.working_days is not None

    def _patched(self, patch_id: str) -> bool:
        """`workflow.patched`, and the run lists the patches it took in `ParcoursPatches`."""
        if not workflow.patched(patch_id):
            return False
        if patch_id not in self._patches:
            self._patches.add(patch_id)
            workflow.upsert_search_attributes([sa.PATCHES.value_set(sorted(self._patches))])
        return True

    def _start_watcher(self, item_id: str) -> None:
        if item_id not in self._watchers:
            self._watchers[item_id] = asyncio.create_task(self._watch(item_id))
            if self._bounded:
                self._supervise(self._watchers[item_id])

    async def _watch(self, item_id: str) -> None:
        """Sleep until the item's next timer event, unless the item changes first."""
        while True:
            item = self.state.items.get(item_id)
            if item is None or self.state.status == "closed":
                self._watchers.pop(item_id, None)
                return
            revision = item.revision

            def changed(item_id: str = item_id, revision: int = revision) -> bool:
                current = self.state.items.get(item_id)
                return current is None or current.revision != revision

            pending = sorted((e for e in item.schedule if e.key not in item.fired), key=lambda e: e.at)
            if self.state.paused_since is not None or not pending:
                await workflow.wait_condition(changed)
                continue
            event = pending[0]
            delay = (event.at - workflow.now()).total_seconds()
            if delay > 0:
                try:
                    await workflow.wait_condition(changed, timeout=timedelta(seconds=delay))
                    continue
                except TimeoutError:
                    pass
            async with self._lock:
                if changed() or self.state.status != "active":
                    continue
                self._fire(item, event)
                await self._commit()

    def _fire(self, item: Item, event: TimerEvent) -> None:
        item.fired.append(event.key)
        self._dirty_items[item.id] = item
        if event.kind == "wait_over":
            self._close_item(item, "done")
            spec = self.definition.step(item.step_id)
            assert isinstance(spec, WaitStep)
            self._after(item, spec.next)
        elif event.kind == "reminder":
            self._record(SYSTEM, "reminder_sent", item, {"reminder": str(event.n + 1)})
            self._notify(self._notification(item, "reminder", event.n))
        elif event.kind == "overdue":
            self._record(SYSTEM, "task_overdue", item, {})
            self._notify(self._notification(item, "overdue", 0))
        elif event.kind == "escalation":
            self._escalate(item, event.n)

    def _escalate(self, item: Item, level: int) -> None:
        chain = self.definition.escalation_for(self.definition.task(item.step_id))
        item.escalation_level = level
        escalation = Escalation(
            id=f"{item.id}-g{item.generation}-n{level}",
            item_id=item.id,
            step_id=item.step_id,
            level=level,
            to=chain[level - 1].to,
            opened_at=workflow.now(),
        )
        self.state.escalations[escalation.id] = escalation
        self._dirty_escalations.add(escalation.id)
        self._record(SYSTEM, "escalated", item, {"level": str(level), "to": escalation.to})
        self._notify(self._notification(item, "escalated", level))

    def _resolve_escalations(self, item: Item) -> None:
        for escalation in self.state.escalations.values():
            if escalation.item_id == item.id and escalation.status == "open":
                escalation.status = "resolved"
                self._dirty_escalations.add(escalation.id)

    def _close_item(self, item: Item, status: ItemStatus, *, outcome: str | None = None) -> None:
        item.status, item.outcome, item.closed_at = status, outcome, workflow.now()
        item.revision += 1
        self._resolve_escalations(item)
        self._dirty_items[item.id] = item
        self.state.items.pop(item.id, None)

    def _close_pathway(self, exit_reason: str) -> None:
        for item in list(self.state.items.values()):
            self._close_item(item, "cancelled")
        self.state.modules.clear()
        self.state.status, self.state.exit_reason = "closed", exit_reason
        self.state.closed_at = workflow.now()
        self.state.paused_since = None

    def _touch_open_items(self) -> None:
        for item in self.state.items.values():
            item.revision += 1
            self._dirty_items[item.id] = item

    def _add_to_follow_up(self, organisation_id: str) -> None:
        if organisation_id not in self.state.follow_up:
            self.state.follow_up.append(organisation_id)

    # --- Effects: read model, e-mails, audit, search attributes --------------------------------

    def _notification(self, item: Item, kind: Any, level: int) -> Notification:
        return Notification(
            key=f"{item.id}:g{item.generation}:{kind}:{level}",
            kind=kind,
            pathway_id=self.input.pathway_id,
            definition_title=self.definition.title,
            item_id=item.id,
            step_title=item.title,
            organisation_id=item.organisation_id,
            basin_id=self.input.basin_id,
            level=level,
            due_at=item.due_at,
        )

    def _notify(self, notification: Notification) -> None:
        self._outbox.append(notification)

    def _note(self, note_id: str | None) -> dict[str, str]:
        return {"note_id": note_id} if note_id else {}

    def _record(self, actor: Actor, action: str, item: Item | None, detail: dict[str, str]) -> None:
        self.state.audit_seq += 1
        self._audit.append(
            AuditEntry(
                id=f"{self.input.pathway_id}-a{self.state.audit_seq}",
                at=workflow.now(),
                pathway_id=self.input.pathway_id,
                actor=actor,
                action=action,
                item_id=item.id if item else None,
                detail=detail,
            )
        )

    def _result(self, message: str, opened: list[str]) -> UpdateResult:
        return UpdateResult(pathway_id=self.input.pathway_id, message=message, opened=opened)

    async def _commit(self) -> None:
        """Project what changed into the read model. A bounded run only asks its committer (the
        caller answers through `_answer`); a run started before writes here, then sends e-mails."""
        if self._bounded:
            self._requested += 1
            self._unsettled = self._unsettled or workflow.current_update_info() is not None
            return
        commit, row = self._batch()
        # A local activity: a short database write (the read model and the e-mails it implies, in
        # one transaction), done by this worker with no round trip through the server.
        unsent: list[str] = await workflow.execute_local_activity(
            COMMIT_ACTIVITY,
            commit,
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=PROJECTION_RETRY,
        )
        # Decided or resolved escalations need no memory beyond the read model.
        for escalation_id in [e.id for e in self.state.escalations.values() if e.status != "open"]:
            del self.state.escalations[escalation_id]
        for notification in commit.notifications:
            if notification.key in unsent:
                task = asyncio.create_task(self._send(notification))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
        self._upsert_search_attributes(row.current_steps, row.sla, row.stuck_since)

    def _batch(self) -> tuple[CommitBatch, PathwayRow]:
        """Everything changed since the last write, as one batch (and the pathway's row)."""
        self.state.revision += 1
        now = workflow.now()
        row = pathway_row(self.input, self.state, now=now)
        batch = ProjectionBatch(
            pathway=row,
            items=[
                ItemRow(pathway_id=row.id, item=i, sla=i.sla(now) if i.kind == "task" and i.status == "open" else None)
                for i in self._dirty_items.values()
            ],
            escalations=[self.state.escalations[e] for e in sorted(self._dirty_escalations)],
            audit=self._audit,
        )
        self._dirty_items, self._dirty_escalations, self._audit = {}, set(), []
        outbox, self._outbox = self._outbox, []
        return CommitBatch(projection=batch, notifications=outbox), row

    async def _committer(self) -> None:
        """Write what handlers and timers changed, one batch at a time: everything asked while a
        write is pending goes in the next batch, so an outage costs one batch, not one per change."""
        while True:
            await workflow.wait_condition(lambda: self._requested > self._written)
            asked = self._requested
            commit, row = self._batch()
            if not await self._commit_once_accepted(commit) and not await self._commit_locally(commit):
                await self._commit_durably(commit)
            # Decided or resolved escalations this batch wrote need no memory beyond the read model.
            for escalation in commit.projection.escalations:
                current = self.state.escalations.get(escalation.id)
                if current is not None and current.status != "open" and escalation.id not in self._dirty_escalations:
                    del self.state.escalations[escalation.id]
            self._upsert_search_attributes(row.current_steps, row.sla, row.stuck_since)
            self._written = asked

    async def _commit_once_accepted(self, commit: CommitBatch) -> bool:
        """After an update changed the state, one attempt as a regular activity. Temporal records an
        update's acceptance when the workflow task that ran its handler completes; a local write in
        that task would outlive a worker killed before it completes (the pages showing an action
        Temporal never kept). A regular activity is scheduled by that completion, so it runs once
        the update is held (dispatched at once to this worker). False: not an update's batch, or
        the attempt failed (the local slices follow)."""
        if not (self._after_acceptance and self._unsettled):
            return False
        self._unsettled = False
        try:
            await workflow.execute_activity(
                COMMIT_ACTIVITY,
                commit,
                result_type=list[str],
                start_to_close_timeout=LOCAL_COMMIT_ATTEMPT,
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError:
            return False
        return True

    async def _commit_locally(self, commit: CommitBatch) -> bool:
        """Local attempts for `commit_local_seconds`, in slices of a fifth of the answer budget:
        a local activity holds the workflow task, so between slices a short timer lets it end,
        and updates waiting meanwhile get in and are answered on time. False: still refused."""
        budget, slice_seconds = self.input.commit_local_seconds, self._local_slice()
        for n in range(max(1, math.ceil(budget / (slice_seconds + LOCAL_COMMIT_PAUSE.total_seconds())))):
            if n:
                await workflow.sleep(LOCAL_COMMIT_PAUSE)
            try:
                await workflow.execute_local_activity(
                    COMMIT_ACTIVITY,
                    commit,
                    result_type=list[str],
                    start_to_close_timeout=LOCAL_COMMIT_ATTEMPT,
                    retry_policy=local_commit_retry(slice_seconds),
                )
                return True
            except (ActivityError, ApplicationError):  # the SDK raises the last attempt's error as is
                continue
        return False

    def _local_slice(self) -> float:
        """A fifth of the answer budget (5 s at most): see `_answer_wait`."""
        return min(LOCAL_COMMIT_SLICE, self.input.answer_within_seconds / 5)

    def _answer_wait(self) -> float:
        """How long an update waits for its write. An update arriving while a local slice holds the
        workflow task gets in when that slice ends; its timer, due while another slice runs,
        fires when that one ends: the wait plus two slices is the answer budget."""
        return self.input.answer_within_seconds - 2 * self._local_slice()

    async def _commit_durably(self, commit: CommitBatch) -> None:
        """The read model refused the write for longer than the local budget: a regular activity
        retries it with backoff (no history event per attempt), shown as an incident meanwhile;
        `retry_now` (an operator) skips the wait."""
        workflow.upsert_search_attributes([sa.INCIDENT.value_set("commit")])
        while True:
            self._retry_requested = False
            attempt = workflow.start_activity(
                COMMIT_ACTIVITY,
                commit,
                result_type=list[str],
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=self._durable_commit_retry(),
            )
            await workflow.wait_condition(partial(self._attempt_over, attempt))
            if attempt.done():
                attempt.result()  # a non-retryable failure raises: the run's task fails (an incident)
                break
            attempt.cancel()
            with contextlib.suppress(ActivityError, asyncio.CancelledError):
                await attempt
        workflow.upsert_search_attributes([sa.INCIDENT.value_unset()])

    def _durable_commit_retry(self) -> RetryPolicy:
        first, longest = self.input.commit_retry_seconds
        return RetryPolicy(
            initial_interval=timedelta(seconds=first),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=max(first, longest)),
        )

    def _attempt_over(self, attempt: asyncio.Task[list[str]]) -> bool:
        return attempt.done() or self._retry_requested

    async def _answer(self, result: UpdateResult) -> UpdateResult:
        """An update's answer once its change is in the read model; a bounded run answers within
        `answer_within_seconds` whatever happens: the change is recorded, the pages will follow."""
        wanted = self._requested  # this update's write (asked just before, with no await since)
        if not self._bounded or self._written >= wanted:
            return result
        try:
            await workflow.wait_condition(
                lambda: self._written >= wanted, timeout=timedelta(seconds=self._answer_wait())
            )
        except TimeoutError:
            return result.model_copy(
                update={"message": f"{result.message} {RECORDED_DISPLAY_FOLLOWS}".strip(), "projected": False}
            )
        return result

    @workflow.signal
    def retry_now(self) -> None:
        """An operator's nudge (`parcours incidents retry`): a read-model write waiting for its next
        durable attempt is tried again at once; any signal also gives a failing task a new attempt."""
        self._retry_requested = True

    async def _send(self, notification: Notification) -> None:
        """Retry an e-mail SMTP refused, with backoff, until it is delivered (never lost)."""
        await workflow.execute_activity(
            NOTIFY_ACTIVITY,
            notification,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=NOTIFY_RETRY,
        )

    async def _drain_sends(self) -> None:
        while self._sends:
            await asyncio.gather(*list(self._sends))

    def _upsert_search_attributes(self, steps: list[str], sla: SlaState | None, stuck_since: datetime | None) -> None:
        wanted: dict[str, Any] = {
            sa.CURRENT_STEPS.name: steps,
            sa.BASIN.name: self.input.basin_id,
            sa.SLA.name: sla,
            sa.STATUS.name: self.state.status,
            sa.STUCK_SINCE.name: stuck_since,
            sa.DEFINITION.name: self.definition.id,
            sa.DEFINITION_VERSION.name: self.definition.version or 0,
        }
        updates: list[SearchAttributeUpdate[Any]] = []
        for key in sa.ALL:
            value = wanted[key.name]
            if self._search_values.get(key.name, "unset") == value:
                continue
            self._search_values[key.name] = value
            updates.append(key.value_unset() if value is None or value == [] else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)


class _ReadyLock:
    """Wait until the run has projected its first steps, then take the workflow's lock, so
    concurrent updates and timers mutate state and project it one at a time. In a bounded run a
    handler that fails leaves the state exactly as it found it."""

    def __init__(self, owner: PathwayWorkflow) -> None:
        self.owner = owner
        self.before: _Snapshot | None = None

    async def __aenter__(self) -> None:
        await workflow.wait_condition(lambda: self.owner._ready)
        await self.owner._lock.acquire()
        self.before = _Snapshot.of(self.owner) if self.owner._bounded else None

    async def __aexit__(self, error_type: object, *exc: object) -> None:
        if error_type is not None and self.before is not None:
            self.before.restore(self.owner)
        self.owner._lock.release()


class _Snapshot:
    """What an update handler may change, copied before it starts (deep copies taken together,
    so the pending items keep pointing at the state's own items)."""

    def __init__(self, owner: PathwayWorkflow) -> None:
        self.state, self.dirty_items, self.dirty_escalations, self.audit, self.outbox = copy.deepcopy(
            (owner.state, owner._dirty_items, owner._dirty_escalations, owner._audit, owner._outbox)
        )
        self.input, self.definition, self.migrated = owner.input, owner.definition, owner._migrated
        self.requested = owner._requested

    @classmethod
    def of(cls, owner: PathwayWorkflow) -> _Snapshot:
        return cls(owner)

    def restore(self, owner: PathwayWorkflow) -> None:
        owner.state, owner._dirty_items, owner._dirty_escalations = self.state, self.dirty_items, self.dirty_escalations
        owner._audit, owner._outbox = self.audit, self.outbox
        owner.input, owner.definition, owner._migrated = self.input, self.definition, self.migrated
        owner._requested = self.requested


def _schedule(
    task: TaskStep, chain: list[Any], start: datetime, due: datetime | None, calendar: WorkCalendar | None = None
) -> list[TimerEvent]:
    """Timer events of a task: reminders, 'due soon', the deadline, then each escalation level.
    With a calendar, a working-day task's events go out within working hours (else at the next
    opening); an ISO task's stay exact, whatever the hour."""
    if due is None:
        return []
    events: list[TimerEvent] = []
    before: list[datetime] = []
    for n, reminder in enumerate(task.reminders):
        if reminder.before is not None:
            at = reminder.before.subtract_from(due, calendar)
            before.append(at)
        else:
            assert reminder.after is not None
            at = reminder.after.add_to(due, calendar)
        events.append(TimerEvent(at=at, kind="reminder", n=n))
    # "Due soon" from the earliest reminder before the deadline, else the last fifth of the delay.
    due_soon = min(before) if before else due - (due - start) / 5
    events.append(TimerEvent(at=due_soon, kind="due_soon"))
    events.append(TimerEvent(at=due, kind="overdue"))
    at = due
    for level, step in enumerate(chain, start=1):
        at = step.after.add_to(at, calendar)
        events.append(TimerEvent(at=at, kind="escalation", n=level))
    if calendar is not None and task.deadline is not None and task.deadline.working_days is not None:
        events = [e.model_copy(update={"at": calendar.next_open(e.at)}) for e in events]
    return events
