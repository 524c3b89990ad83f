"""A curated mutation score (`make mutants`): break, one at a time, a behaviour users rely on, and
check that the tests meant to guard it fail. Too slow for CI; run it on demand.

Each mutation is a small textual patch applied to a temporary copy of the work tree, with the
tests that should catch it. The script prints each mutation with the test that caught it, or
"missed", then the score. Mutations that changed nothing observable were removed from the list,
with the reason written in REMOVED below.

    .venv/bin/python bench/mutants.py            # every mutation
    .venv/bin/python bench/mutants.py -k nir     # those whose name contains "nir"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


M = Mutation
MUTATIONS: list[Mutation] = [
    # --- The eight the suite used to miss ------------------------------------------------------
    M(
        "a completed task keeps its reminders, overdue notices and escalations",
        "workflows/pathway.py",
        "                return current is None or current.revision != revision",
        "                return current is not None and current.revision != revision",
        ("tests/test_regressions.py::test_a_task_completed_while_its_pathway_goes_on_gets_no_more_reminders",),
    ),
    M(
        "an organisation that left the follow-up group still reads the pathway",
        "store/views.py",
        "member.organisation_id == organisation_id, col(member.until).is_(None))",
        "member.organisation_id == organisation_id)",
        (
            "tests/test_regressions.py::test_an_organisation_that_left_the_follow_up_group_can_no_longer_read_the_pathway",
        ),
    ),
    M(
        "leaving the follow-up group is never recorded",
        "store/projection.py",
        '    if row.status != "closed":\n        _update_follow_up(connection, batch, moved_away)',
        "    pass",
        (
            "tests/test_regressions.py::test_an_organisation_that_left_the_follow_up_group_can_no_longer_read_the_pathway",
        ),
    ),
    M(
        "the NIR is shown unmasked to every organisation",
        "services/reading.py",
        "    if org_type not in NIR_READERS:",
        "    if False:",
        (
            "tests/test_regressions.py::test_the_nir_is_masked_for_mission_locale_and_associations_not_for_the_departement",
        ),
    ),
    M(
        "a deactivated user signs in again with their password",
        "services/identity.py",
        "password) or user is None or not user.active:",
        "password) or user is None:",
        ("tests/test_regressions.py::test_a_deactivated_user_is_signed_out_at_once_and_cannot_sign_in_again",),
    ),
    M(
        "a deactivated user signs in with a one-time link",
        "services/identity.py",
        "        return user if user is not None and user.active else None",
        "        return user",
        ("tests/test_regressions.py::test_a_deactivated_user_is_signed_out_at_once_and_cannot_sign_in_again",),
    ),
    M(
        "retention keeps the form answers",
        "store/retention.py",
        "            for model in (models.Note, models.Submission):",
        "            for model in (models.Note,):",
        (
            "tests/test_regressions.py::test_retention_apply_erases_answers_notes_and_contacts_and_keeps_counts_and_audit",
        ),
    ),
    M(
        "the admin's role-change form accepts a post without its CSRF token",
        "admin_ui/pages/admin.py",
        '@router.post("/admin/utilisateurs/{user_id}", dependencies=[*AdminOnly, Depends(verify_csrf)])',
        '@router.post("/admin/utilisateurs/{user_id}", dependencies=[*AdminOnly])',
        ("tests/test_regressions.py::test_every_state_changing_form_is_refused_without_its_csrf_token",),
    ),
    M(
        "escalation e-mails reach every basin's GTO lead",
        "activities/pathway_activities.py",
        'models.User.role == "gto_lead", models.User.basin_id == n.basin_id, models.User.active',
        'models.User.role == "gto_lead", models.User.active',
        ("tests/test_regressions.py::test_escalations_reach_the_gto_of_the_pathway_s_own_basin",),
    ),
    # --- Sign-in details and the basin filter -------------------------------------------------
    M(
        "an expired one-time link still signs in",
        "services/identity.py",
        "        if expires < q.now():",
        "        if False:",
        ("tests/test_regressions.py::test_an_expired_one_time_link_is_refused",),
    ),
    M(
        "sign-in redirects to another site",
        "admin_ui/pages/auth.py",
        '    if not target or not target.startswith("/") or target.startswith("//"):',
        "    if not target:",
        ("tests/test_regressions.py::test_sign_in_never_redirects_off_site",),
    ),
    M(
        "a pathway with no progress for 10 working days is not stuck",
        "services/reading.py",
        "STUCK_AFTER_WORKING_DAYS = 10",
        "STUCK_AFTER_WORKING_DAYS = 11",
        ("tests/test_regressions.py::test_no_progress_for_ten_working_days_makes_a_pathway_stuck_nine_does_not",),
    ),
    M(
        "choosing a basin does not filter the definitions offered",
        "admin_ui/pages/caseworker.py",
        '    return render(request, "caseworker/start.html", **_start_context(engine, user, basin))',
        '    return render(request, "caseworker/start.html", **_start_context(engine, user, None))',
        ("tests/test_regressions.py::test_choosing_a_basin_filters_the_definitions_offered",),
    ),
    # --- Working days, working hours, calendar --------------------------------------------------
    M(
        "public holidays count as working days",
        "definitions/calendar.py",
        "return day.weekday() < 5 and day not in self.holidays",
        "return day.weekday() < 5",
        ("tests/test_calendar.py",),
    ),
    M(
        "library working days ignore holidays (1.0.0 runs, UI)",
        "definitions/durations.py",
        "return day.weekday() < 5 and day not in _french_holidays(day.year)",
        "return day.weekday() < 5",
        ("tests/test_workdays.py",),
    ),
    M(
        "a working-day deadline keeps the start's wall-clock time instead of closing time",
        "workflows/pathway.py",
        "            return calendar.deadline(start, delay.working_days)",
        "            return calendar.add_working_days(start, delay.working_days)",
        (
            "tests/test_working_hours.py::test_working_hours_are_a_patch_old_runs_keep_their_rules_new_runs_take_the_new",
        ),
    ),
    M(
        "reminders and escalations of working-day clocks go out at night",
        "workflows/pathway.py",
        '        events = [e.model_copy(update={"at": calendar.next_open(e.at)}) for e in events]',
        "        pass",
        ("tests/test_calendar.py::test_a_working_day_clock_sends_within_working_hours_and_an_iso_clock_at_once",),
    ),
    M(
        "a pause costs clock time instead of working time",
        "workflows/pathway.py",
        "                if calendar is not None and self._on_working_days(item):",
        "                if False:",
        ("tests/test_working_hours.py::test_a_pause_outside_working_hours_does_not_move_the_deadline",),
    ),
    M(
        "the run computes deadlines from the installed holidays library, not its own calendar",
        "workflows/pathway.py",
        "        if self.input.calendar is None or not self._patched(WORKING_HOURS):\n            return None\n        return self.input.calendar",
        "        if self.input.calendar is None or not self._patched(WORKING_HOURS):\n            return None\n        from definitions.calendar import work_calendar\n\n        return work_calendar(workflow.now().year)",
        ("tests/test_working_hours.py::test_the_run_counts_with_its_own_calendar",),
    ),
    M(
        "a 1.0.0 pathway never receives a calendar at continue-as-new",
        "workflows/pathway.py",
        "        if not self._patched(CALENDAR_AT_CONTINUE_AS_NEW):\n            return",
        "        if True:\n            return",
        (
            "tests/test_working_hours.py::test_a_pathway_started_without_a_calendar_gets_one_at_its_next_continue_as_new",
        ),
    ),
    # --- Escalation chain and GTO decisions -----------------------------------------------------
    M(
        "the second escalation level is never scheduled",
        "workflows/pathway.py",
        "    for level, step in enumerate(chain, start=1):",
        "    for level, step in enumerate(chain[:1], start=1):",
        ("tests/test_timers_and_decisions.py::test_reminders_then_overdue_then_escalation_levels",),
    ),
    M(
        "a GTO reassignment leaves the task with its organisation",
        "workflows/pathway.py",
        "                self._reassign(item, command.organisation_id)",
        "                pass",
        ("tests/test_timers_and_decisions.py::test_gto_decision_and_its_effects",),
    ),
    M(
        "a GTO extension does not move the deadline",
        "workflows/pathway.py",
        "                self._restart_clock(item, due=self._deadline(delay, due))",
        "                self._restart_clock(item, due=item.due_at)",
        ("tests/test_timers_and_decisions.py::test_gto_decision_and_its_effects",),
    ),
    M(
        "a GTO closing does not close the pathway",
        "workflows/pathway.py",
        "                assert command.exit_reason is not None\n                self._close_pathway(command.exit_reason)",
        "                assert command.exit_reason is not None",
        ("tests/test_timers_and_decisions.py::test_gto_decision_and_its_effects",),
    ),
    M(
        "a GTO adding a step does not start the module",
        "workflows/pathway.py",
        "                    opened = self._start_module(command.module_id)",
        "                    opened = []",
        ("tests/test_timers_and_decisions.py::test_gto_decision_and_its_effects",),
    ),
    M(
        "a GTO decision is accepted on a paused pathway",
        "workflows/pathway.py",
        '        if self.state.status == "paused":\n            raise reject(\n                "Le parcours est suspendu : la structure référente doit le reprendre avant une décision du GTO."',
        '        if False:\n            raise reject(\n                "Le parcours est suspendu : la structure référente doit le reprendre avant une décision du GTO."',
        ("tests/test_working_hours.py::test_a_gto_cannot_decide_on_a_paused_pathway",),
    ),
    # --- Pause, modules, continue-as-new ------------------------------------------------------
    M(
        "resuming a paused pathway does not shift its deadlines",
        "workflows/pathway.py",
        '                    item.due_at = item.due_at + shift if item.due_at else None\n                    item.schedule = [e.model_copy(update={"at": e.at + shift}) for e in item.schedule]',
        "                    pass",
        ("tests/test_timers_and_decisions.py::test_pause_stops_the_clock_and_resume_shifts_deadlines",),
    ),
    M(
        "a module stops after its first step",
        "workflows/pathway.py",
        "        self.state.modules[module_id] = index + 1",
        "        self.state.modules[module_id] = len(module.steps)",
        ("tests/test_timers_and_decisions.py::test_module_added_at_run_time",),
    ),
    M(
        "continue-as-new forgets the open tasks and their clocks",
        "workflows/pathway.py",
        '                self.input.model_copy(update={"carried": self.state, "definition": self.definition})',
        '                self.input.model_copy(update={"carried": None, "definition": self.definition})',
        ("tests/test_timers_and_decisions.py::test_long_pathway_continues_as_new_and_completes",),
    ),
    # --- Determinism and replay ---------------------------------------------------------------
    M(
        "the sandbox passes every module through (datetime.now() goes unnoticed)",
        "worker/runner.py",
        "restrictions=SandboxRestrictions.default.with_passthrough_modules(*DETERMINISTIC_MODULES)",
        "restrictions=SandboxRestrictions.default.with_passthrough_all_modules()",
        ("tests/test_sandbox.py",),
    ),
    M(
        "the workflow issues a new command at start (1.0.0 histories no longer replay)",
        "workflows/pathway.py",
        "        async with self._lock:\n            if input.carried is None:",
        "        await workflow.sleep(0.01)\n        async with self._lock:\n            if input.carried is None:",
        ("tests/test_replay.py",),
    ),
    # --- Form and definition validation ---------------------------------------------------------
    M(
        "a required form field may be left empty",
        "definitions/forms.py",
        '            if form_field.required:\n                result.errors[form_field.id] = f"« {form_field.label} » est obligatoire"\n            continue',
        "            continue",
        (
            "tests/test_pages_caseworker.py::test_invalid_submission_is_shown_inline_then_completion_opens_the_next_task",
        ),
    ),
    M(
        "a number above its maximum is accepted",
        "definitions/forms.py",
        "        if form_field.maximum is not None and number > form_field.maximum:",
        "        if False:",
        ("tests/test_pages_caseworker.py",),
    ),
    M(
        "an outcome leading to an unknown step is accepted",
        "definitions/loader.py",
        "        if value is not None and value not in targets:",
        "        if False:",
        ("tests/test_definitions.py::test_unknown_target_in_outcome_next",),
    ),
    M(
        "unreachable steps are accepted",
        "definitions/loader.py",
        "            if step.id not in reachable and step.id not in explained:",
        "            if False:",
        ("tests/test_definitions.py::test_unreachable_step",),
    ),
    M(
        "a decision without a default is accepted",
        "definitions/loader.py",
        "    if step.default is None:\n        err(",
        "    if False:\n        err(",
        ("tests/test_definitions.py::test_decision_without_default",),
    ),
    M(
        "an e-mail that cannot be built wedges the commit",
        "activities/pathway_activities.py",
        "        except Exception as error:  # a template or data error: this e-mail fails, the commit goes on",
        "        except ZeroDivisionError as error:",
        ("tests/test_emails.py::test_an_email_that_cannot_be_built_fails_alone_and_never_wedges_the_pathway",),
    ),
    M(
        "a GTO may extend a deadline by more than two years",
        "services/pathways.py",
        "    if too_long(delay):\n        raise ServiceError(",
        "    if False:\n        raise ServiceError(",
        ("tests/test_services.py::test_a_gto_extension_is_bounded_to_about_two_years",),
    ),
    # --- Need-to-know, audit, sign-in -----------------------------------------------------------
    M(
        "a GTO lead reads the stuck pathways of another basin",
        "services/reading.py",
        '    if user.role == "gto_lead" and user.basin_id == pathway.basin_id and is_stuck(pathway):',
        '    if user.role == "gto_lead" and is_stuck(pathway):',
        ("tests/test_api.py::test_access_matrix",),
    ),
    M(
        "views of personal data are not audited",
        "services/reading.py",
        "    record_views(engine, user, [(pathway_id, what, reason)])",
        "    pass",
        ("tests/test_api.py::test_pathway_detail_masks_the_nir_by_organisation_type_and_is_audited",),
    ),
    M(
        "a wrong password signs in",
        "services/identity.py",
        "        return _hasher.verify(password_hash, password)",
        "        return True",
        ("tests/test_pages_auth_admin.py::test_wrong_password_is_refused_then_rate_limited",),
    ),
    M(
        "a one-time link works twice",
        "services/identity.py",
        "        if row is None or row.used_at is not None or row.expires_at is None:",
        "        if row is None or row.expires_at is None:",
        ("tests/test_pages_auth_admin.py::test_one_time_link_by_email_signs_in_once",),
    ),
    M(
        "forms are accepted without their CSRF token",
        "admin_ui/deps.py",
        "    if not expected or not sent or not secrets.compare_digest(str(expected), sent):",
        "    if False:",
        ("tests/test_pages_caseworker.py::test_csrf_is_required_on_every_form",),
    ),
    # --- Issue 9: bounded commits, the outbox relay, incidents, idempotent commands, topology ---
    M(
        "local attempts hold the workflow task for the whole local budget",
        "workflows/pathway.py",
        "budget, slice_seconds = self.input.commit_local_seconds, self._local_slice()",
        "budget = slice_seconds = self.input.commit_local_seconds",
        ("tests/test_bounded_commits.py::test_an_action_is_answered_while_local_writes_still_retry",),
    ),
    M(
        "an action is written to the read model before Temporal holds it (a kill -9 leaves a phantom)",
        "workflows/pathway.py",
        "        if not (self._after_acceptance and self._unsettled):",
        "        if True:",
        ("tests/test_bounded_commits.py::test_an_action_reaches_the_read_model_only_once_temporal_holds_it",),
    ),
    M(
        "an action refused while the pathway's workflow task is failing is a 500",
        "services/pathways.py",
        "            if outcome_unknown(error) or not_ready(error):",
        "            if outcome_unknown(error):",
        ("tests/test_incidents.py::test_a_failing_workflow_task_is_an_incident_until_fixed_and_retried",),
    ),
    M(
        "the dashboard's trends compare Paris wall time with the read model's UTC",
        "store/views.py",
        "    edges = [aware(b).astimezone(UTC) for b in bounds]",
        "    edges = list(bounds)",
        ("tests/test_trends.py::test_each_event_counts_in_its_paris_week",),
    ),
    M(
        "an action whose write is late hangs instead of answering 'recorded'",
        "workflows/pathway.py",
        '"message": f"{result.message} {RECORDED_DISPLAY_FOLLOWS}".strip(), "projected": False}',
        '"message": f"{result.message} {RECORDED_DISPLAY_FOLLOWS}".strip()}',
        ("tests/test_bounded_commits.py::test_a_read_model_outage_answers_in_bounded_time_and_catches_up",),
    ),
    M(
        "a failing action leaves the state half-applied",
        "workflows/pathway.py",
        "            self.before.restore(self.owner)",
        "            pass",
        ("tests/test_bounded_commits.py::test_a_failing_action_leaves_the_state_as_it_was",),
    ),
    M(
        "an operator's retry waits for the next durable attempt",
        "workflows/pathway.py",
        "        self._retry_requested = True\n",
        "        pass\n",
        ("tests/test_bounded_commits.py::test_an_operator_retry_skips_the_backoff",),
    ),
    M(
        "a refused read-model write is no incident",
        "workflows/pathway.py",
        '        workflow.upsert_search_attributes([sa.INCIDENT.value_set("commit")])\n',
        "",
        ("tests/test_bounded_commits.py::test_a_read_model_outage_answers_in_bounded_time_and_catches_up",),
    ),
    M(
        "a crashed timer coroutine dies silently",
        "workflows/pathway.py",
        "                self._failure = task.exception()",
        "                pass",
        ("tests/test_incidents.py::test_a_failing_workflow_task_is_an_incident_until_fixed_and_retried",),
    ),
    M(
        "a retried update is a new update (no update id)",
        "services/pathways.py",
        "result: UpdateResult = await handle.execute_update(update, command, id=request.update_id)",
        "result: UpdateResult = await handle.execute_update(update, command)",
        ("tests/test_idempotency.py::test_an_update_retried_after_a_client_timeout_acts_once",),
    ),
    M(
        "a retried complete is sent again instead of answered",
        "services/pathways.py",
        "        if request.answer is not None:\n            return UpdateResult.model_validate(request.answer)\n",
        "",
        ("tests/test_idempotency.py::test_a_complete_retried_gets_the_first_answer_and_another_request_gets_409",),
    ),
    M(
        "a retry never asks Temporal for its first outcome",
        "services/pathways.py",
        "        if not request.pending or request.pathway_id is None:\n            return None\n        handle",
        "        if True:\n            return None\n        handle",
        ("tests/test_idempotency.py::test_an_update_retried_after_a_client_timeout_acts_once",),
    ),
    M(
        "an unknown outcome is taken for a refusal",
        "services/pathways.py",
        "    return isinstance(error, RPCError) and error.status in UNKNOWN_OUTCOME",
        "    return False",
        ("tests/test_idempotency.py::test_an_update_retried_after_a_client_timeout_acts_once",),
    ),
    M(
        "a refused request keeps its key",
        "services/pathways.py",
        "        except WorkflowUpdateFailedError as error:\n            request.forget()\n            raise self._refusal(error) from None\n        except (RPCError",
        "        except WorkflowUpdateFailedError as error:\n            raise self._refusal(error) from None\n        except (RPCError",
        ("tests/test_idempotency.py::test_a_refused_request_frees_its_key",),
    ),
    M(
        "the same key is accepted with other values",
        "services/requests.py",
        "        if (row.kind, row.target, row.fingerprint) != (self.kind, self.target, self.fingerprint):",
        "        if (row.kind, row.target) != (self.kind, self.target):",
        ("tests/test_idempotency.py::test_the_same_key_with_other_values_is_refused",),
    ),
    M(
        "a retry writes its note again",
        "services/pathways.py",
        '            note_id=request.derived("note"),',
        "            note_id=None,",
        ("tests/test_idempotency.py::test_an_update_retried_after_it_never_reached_temporal_acts_once",),
    ),
    M(
        "a retry writes its form answers again",
        "services/pathways.py",
        '                submission_id=request.derived("sub"),',
        "                submission_id=None,",
        ("tests/test_idempotency.py::test_an_update_retried_after_it_never_reached_temporal_acts_once",),
    ),
    M(
        "a retried start starts a second pathway",
        "services/pathways.py",
        '        pathway_id = derived.upper() if derived else "P-" + uuid.uuid4().hex[:16].upper()',
        '        pathway_id = "P-" + uuid.uuid4().hex[:16].upper()',
        ("tests/test_idempotency.py::test_a_start_retried_after_a_client_timeout_gives_the_same_pathway",),
    ),
    M(
        "a start that never reached Temporal loses its person",
        "services/pathways.py",
        "        if outcome_unknown(error):\n            raise unavailable(request) from None\n        try:",
        "        try:",
        ("tests/test_idempotency.py::test_a_start_that_never_reached_temporal_keeps_its_person_for_the_retry",),
    ),
    M(
        "a start refused by Temporal keeps an orphan person",
        "services/pathways.py",
        "        self._forget_person(person_id)\n        request.forget()\n        raise error",
        "        request.forget()\n        raise error",
        ("tests/test_idempotency.py::test_a_start_refused_by_temporal_removes_its_person",),
    ),
    M(
        "a malformed Idempotency-Key is accepted",
        "admin_ui/api.py",
        "    if key is not None and not requests.valid_request_id(key):",
        "    if False:",
        ("tests/test_idempotency.py::test_api_refuses_a_malformed_idempotency_key_naming_the_header",),
    ),
    M(
        "the API forgets the Idempotency-Key of a completion",
        "admin_ui/api.py",
        "            task_id=task_id, actor=user.actor, outcome=body.outcome, data=body.data, request_id=key",
        "            task_id=task_id, actor=user.actor, outcome=body.outcome, data=body.data",
        ("tests/test_idempotency.py::test_api_complete_retried_with_its_idempotency_key",),
    ),
    M(
        "a page shown again draws a new token",
        "admin_ui/web.py",
        "    if posted is not None and posted[0] == form:\n        return str(posted[1])\n",
        "",
        ("tests/test_idempotency.py::test_a_page_form_sent_again_after_a_timeout_acts_once",),
    ),
    M(
        "a skip form sent again is refused",
        "admin_ui/pages/caseworker.py",
        '        elif values["tache"] not in {t.id for t in context["open_tasks"]} and request_id is None:',
        '        elif values["tache"] not in {t.id for t in context["open_tasks"]}:',
        ("tests/test_idempotency.py::test_skip_form_sent_again_after_the_step_closed_gets_the_first_answer",),
    ),
    M(
        "the CLI forgets --request-id on a start",
        "worker/cli.py",
        "                person=person_data,\n                actor=actor,\n                request_id=request,",
        "                person=person_data,\n                actor=actor,",
        ("tests/test_idempotency.py::test_cli_write_commands_take_a_request_id",),
    ),
    M(
        "two users' keys meet",
        "services/requests.py",
        '        return f"{self.actor_user_id}:{self.request_id}"',
        "        return self.request_id",
        ("tests/test_idempotency.py::test_the_same_key_with_other_values_is_refused",),
    ),
    M(
        "a retry inserts its side writes twice",
        "store/queries.py",
        "        if session.get(type(row), row.id) is not None:\n            return\n    try:\n        with session_scope(engine) as session:\n            session.add(row)\n    except IntegrityError:\n        with session_scope(engine) as session:\n            if session.get(type(row), row.id) is None:\n                raise",
        "        pass\n    with session_scope(engine) as session:\n        session.add(row)",
        ("tests/test_idempotency.py::test_an_update_retried_after_it_never_reached_temporal_acts_once",),
    ),
    M(
        "a GTO decision form sent again acts twice",
        "admin_ui/pages/gto.py",
        "            escalation=escalation,\n            request_id=token,",
        "            escalation=escalation,",
        ("tests/test_idempotency.py::test_gto_decision_form_sent_again_acts_once",),
    ),
    M(
        "an update waits for SMTP",
        "activities/pathway_activities.py",
        "            self.outbox.wake()\n        return []",
        "            await self.outbox.deliver_due()\n        return []",
        ("tests/test_outbox.py::test_a_slow_smtp_server_never_delays_an_update",),
    ),
    M(
        "the commit no longer wakes its relay",
        "activities/pathway_activities.py",
        "            self.outbox.wake()\n        return []",
        "            pass\n        return []",
        ("tests/test_outbox.py::test_a_commit_wakes_the_relay_of_its_process_at_once",),
    ),
    M(
        "a failed send keeps its claim for the whole lease",
        "activities/outbox.py",
        "next_attempt_at=now + backoff(row.attempts + 1),\n                    claimed_until=None,",
        "next_attempt_at=now + backoff(row.attempts + 1),",
        ("tests/test_outbox.py::test_an_absent_smtp_server_delays_the_emails_never_the_update",),
    ),
    M(
        "a claim holds no lease",
        "activities/outbox.py",
        ".values(claimed_until=now + self.lease, claim_token=token)",
        ".values(claimed_until=now, claim_token=token)",
        ("tests/test_outbox.py::test_several_relays_deliver_each_key_exactly_once",),
    ),
    M(
        "a random Message-ID per delivery",
        "activities/outbox.py",
        '"Message-ID": message_id(row.key, self.settings.public_url)',
        '"Message-ID": __import__("email.utils").utils.make_msgid(domain="parcours")',
        ("tests/test_outbox.py::test_two_deliveries_of_one_key_carry_the_same_message_id",),
    ),
    M(
        "a crashed relay's claim never expires",
        "activities/outbox.py",
        "or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),",
        "table.c.claimed_until.is_(None),",
        ("tests/test_outbox.py::test_a_crash_between_acceptance_and_marking_resends_with_the_same_message_id",),
    ),
    M(
        "e-mails whose rendering failed are sent",
        "activities/outbox.py",
        'table.c.status == "pending",\n            table.c.next_attempt_at <= now,',
        'table.c.status != "sent",\n            table.c.next_attempt_at <= now,',
        ("tests/test_outbox.py::test_rows_whose_rendering_failed_are_never_sent",),
    ),
    M(
        "the relay sends sent e-mails again",
        "activities/outbox.py",
        '            table.c.status == "pending",\n            table.c.next_attempt_at <= now,',
        "            table.c.next_attempt_at <= now,",
        ("tests/test_regressions.py::test_the_same_commit_or_notification_twice_sends_one_email",),
    ),
    M(
        "a late, older commit overwrites the read model",
        "activities/pathway_activities.py",
        "            if not _superseded(connection, batch.projection.pathway):",
        "            if True:",
        ("tests/test_outbox.py::test_the_same_commit_twice_leaves_the_same_read_model_and_one_row_per_email",),
    ),
    M(
        "two keys share a Message-ID",
        "activities/mailer.py",
        '        elif char == ":" and 0 < index',
        '        elif char in ":." and 0 < index',
        ("tests/test_outbox.py::test_the_message_id_is_the_key_in_a_valid_header",),
    ),
    M(
        "one pathway's e-mails leave side by side",
        "activities/outbox.py",
        "by_pathway.setdefault(row.pathway_id, [])",
        "by_pathway.setdefault(row.key, [])",
        ("tests/test_outbox.py::test_a_pathway_s_emails_leave_in_the_order_they_were_recorded",),
    ),
    M(
        "a batch is sent in the order of its keys",
        "activities/outbox.py",
        ".where(table.c.key.in_(keys), table.c.claim_token == token)\n            .order_by(table.c.next_attempt_at, table.c.created_at, table.c.key)",
        ".where(table.c.key.in_(keys), table.c.claim_token == token)\n            .order_by(table.c.key)",
        ("tests/test_outbox.py::test_a_pathway_s_emails_leave_in_the_order_they_were_recorded",),
    ),
    M(
        "a stopping relay keeps its other claimed e-mails for the whole lease",
        "activities/outbox.py",
        "                await self._in_db(self._release, [r.key for r in rows[index:]], token)\n",
        "",
        ("tests/test_outbox.py::test_a_stopping_relay_finishes_its_send_and_gives_the_rest_back",),
    ),
    M(
        "the relay races a release 1.0 worker for its e-mail",
        "activities/outbox.py",
        "            table.c.next_attempt_at <= now,  # NULL",
        "            or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now),  # NULL",
        ("tests/test_outbox.py::test_a_release_1_0_worker_s_email_is_taken_over_once_its_run_asks_again",),
    ),
    M(
        "a release 1.0 worker's e-mail is never taken over",
        "activities/pathway_activities.py",
        "                existing.next_attempt_at = q.now()",
        "                pass",
        ("tests/test_outbox.py::test_a_release_1_0_worker_s_email_is_taken_over_once_its_run_asks_again",),
    ),
    M(
        "retries back off linearly",
        "activities/outbox.py",
        "BACKOFF_FIRST * 2 ** min(",
        "BACKOFF_FIRST * 2 * min(",
        ("tests/test_outbox.py::test_retries_back_off_from_seconds_to_ten_minutes",),
    ),
    M(
        "any poll interval is accepted",
        "parcours/settings.py",
        "        if not 0.05 <= value <= 300:",
        "        if False:",
        ("tests/test_outbox.py::test_the_poll_interval_is_validated",),
    ),
    M(
        "workflow-task incidents are not listed",
        "services/incidents.py",
        "        query = incidents_query(service.task_queue)\n",
        "        query = incidents_query(service.task_queue, reported_problems=False)\n",
        ("tests/test_incidents.py::test_a_failing_workflow_task_is_an_incident_until_fixed_and_retried",),
    ),
    M(
        "an incident retry sends nothing",
        "services/incidents.py",
        "        await service.client.get_workflow_handle(pathway_id).signal(RETRY_SIGNAL)",
        "        pass",
        ("tests/test_incidents.py::test_a_refused_read_model_write_is_an_incident_retried_at_once",),
    ),
    M(
        "caseworkers may retry incidents",
        "services/incidents.py",
        'RETRIERS = ("admin", "system")',
        'RETRIERS = ("admin", "system", "caseworker")',
        ("tests/test_incidents.py::test_a_refused_read_model_write_is_an_incident_retried_at_once",),
    ),
    M(
        "an incident shows the outermost error, not its cause",
        "services/incidents.py",
        "        root = chain[-1]\n        kind = _failure_type(root)",
        "        root = chain[0]\n        kind = _failure_type(root)",
        ("tests/test_incidents.py::test_a_failing_workflow_task_is_an_incident_until_fixed_and_retried",),
    ),
    M(
        "an incident retry is not audited",
        "services/incidents.py",
        "    audited = _audit(service, actor, pathway_id, detail)",
        "    audited = True",
        ("tests/test_incidents.py::test_a_refused_read_model_write_is_an_incident_retried_at_once",),
    ),
    M(
        "incident pages overlap",
        "services/incidents.py",
        "        if position > (page - 1) * page_size:",
        "        if position >= (page - 1) * page_size:",
        ("tests/test_incidents.py::test_a_refused_read_model_write_is_an_incident_retried_at_once",),
    ),
    M(
        "an incident's next retry is not shown",
        "services/incidents.py",
        "            next_retry=_time(commit.next_attempt_schedule_time) if commit else None,",
        "            next_retry=None,",
        ("tests/test_incidents.py::test_a_refused_read_model_write_is_an_incident_retried_at_once",),
    ),
    M(
        "a refused connection is not said in words",
        "services/incidents.py",
        '    (r"connection ?refused|connectionrefused", "connexion refusée"),\n',
        "",
        ("tests/test_incidents.py::test_a_refused_read_model_write_is_an_incident_retried_at_once",),
    ),
    M(
        "caseworkers see the incidents page",
        "admin_ui/pages/incidents.py",
        'AdminOnly = [Depends(require_roles("admin"))]',
        'AdminOnly = [Depends(require_roles("admin", "caseworker"))]',
        ("tests/test_incidents.py::test_a_failing_workflow_task_is_an_incident_until_fixed_and_retried",),
    ),
    M(
        "the incidents page has no link in the menu",
        "admin_ui/templates/base.html",
        '          <li class="fr-nav__item"><a class="fr-nav__link" href="/admin/incidents" {% if nav == "incidents" %}aria-current="page"{% endif %}>Incidents</a></li>\n',
        "",
        ("tests/test_incidents.py::test_a_failing_workflow_task_is_an_incident_until_fixed_and_retried",),
    ),
    M(
        "the empty incidents page says nothing",
        "admin_ui/templates/admin/incidents.html",
        '<p id="aucun-incident">Aucun incident : tous les parcours en cours avancent normalement.</p>',
        "",
        ("tests/test_incidents.py::test_no_incident_shows_an_empty_page",),
    ),
    M(
        "the CLI has no incidents commands",
        "worker/cli.py",
        '    (incidents_app, "incidents"),\n',
        "",
        ("tests/test_incidents.py::test_a_refused_read_model_write_is_an_incident_retried_at_once",),
    ),
    M(
        "parcours ui ignores PARCOURS_UI_WORKERS",
        "worker/cli.py",
        "workers=workers or config.ui_workers,",
        "workers=workers or 1,",
        ("tests/test_topology.py::test_a_pathway_goes_on_through_the_api_when_the_worker_running_it_is_killed",),
    ),
    M(
        "compose goes back to Temporal's development image",
        "docker-compose.yml",
        "image: temporalio/server:",
        "image: temporalio/auto-setup:",
        ("tests/test_topology.py::test_compose_runs_temporal_s_production_image_after_its_schema_job",),
    ),
    M(
        "Temporal starts before its schema job ends",
        "docker-compose.yml",
        "      temporal-schema: {condition: service_completed_successfully}",
        "      temporal-schema: {condition: service_started}",
        ("tests/test_topology.py::test_compose_runs_temporal_s_production_image_after_its_schema_job",),
    ),
    M(
        "the visibility schema is never migrated",
        "docker-compose.yml",
        "$$sql --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned;",
        "true;",
        ("tests/test_topology.py::test_compose_runs_temporal_s_production_image_after_its_schema_job",),
    ),
    M(
        "Parcours starts before the namespace exists",
        "docker-compose.yml",
        "      temporal-namespace: {condition: service_completed_successfully}",
        "      temporal-namespace: {condition: service_started}",
        ("tests/test_topology.py::test_compose_runs_temporal_s_production_image_after_its_schema_job",),
    ),
    M(
        "Temporal runs the development dynamic config",
        "docker-compose.yml",
        "config/dynamicconfig/parcours.yaml",
        "config/dynamicconfig/development-sql.yaml",
        ("tests/test_topology.py::test_compose_runs_temporal_s_production_image_after_its_schema_job",),
    ),
    M(
        "pages read through one session per query again",
        "admin_ui/app.py",
        "    app.add_middleware(OneSessionPerRead, engine=engine)\n",
        "",
        ("tests/test_request_sessions.py",),
    ),
    M(
        "a view's audit row written inside a shared session is never committed",
        "store/db.py",
        "            shared.session.commit()\n            shared.wrote = False\n    except",
        "            pass\n    except",
        ("tests/test_request_sessions.py",),
    ),
    M(
        "a host's SIRET is stored without its check",
        "services/hosts.py",
        "        clean.siret = siret_number.validate(raw_siret)",
        "        clean.siret = raw_siret",
        ("tests/test_hosts.py",),
    ),
    M(
        "any organisation keeps the host directory",
        "services/hosts.py",
        '    return actor.role == "caseworker" and organisation is not None and organisation.type in DIRECTORY_KEEPERS',
        "    return True",
        ("tests/test_hosts.py",),
    ),
    M(
        "the directory's search is accent-sensitive",
        "services/hosts.py",
        '    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))',
        "    return text.lower()",
        ("tests/test_hosts.py",),
    ),
    M(
        "an offer's trade does not find its host",
        "services/hosts.py",
        "        where.append(col(models.Host.search_text).like(pattern) | col(models.Host.id).in_(offered))",
        "        where.append(col(models.Host.search_text).like(pattern))",
        ("tests/test_hosts.py",),
    ),
    M(
        "a one-time link serves again",
        "services/links.py",
        "    if row.used_at is not None and not spent_ok:",
        "    if False:",
        ("tests/test_hosts.py",),
    ),
    M(
        "a one-time link never expires",
        "services/links.py",
        "    if row.expires_at is None or aware(row.expires_at) <= q.now():",
        "    if row.expires_at is None:",
        ("tests/test_hosts.py",),
    ),
    M(
        "the passport is shown to the follow-up group without the person's consent",
        "services/passport.py",
        "    if user.organisation_id != pathway.referent_org and consent is None:",
        "    if False:",
        ("tests/test_passport.py",),
    ),
    M(
        "any partner records the person's consent",
        "services/passport.py",
        '    if user.organisation_id != pathway.referent_org:\n        raise ServiceError("Seule',
        '    if False:\n        raise ServiceError("Seule',
        ("tests/test_passport.py",),
    ),
    M(
        "the passport recognises only mastered skills",
        "services/passport.py",
        "if last is not None and last >= 3]",
        "if last is not None and last >= 4]",
        ("tests/test_passport.py",),
    ),
    M(
        "the passport's chart is never drawn",
        "admin_ui/pages/caseworker.py",
        "Markup(passport.chart_svg(found)) if len(found.assessments) > 1 else None",
        "None",
        ("tests/test_passport.py",),
    ),
    M(
        "a person's export holds every person's pathways",
        "services/person_space.py",
        "select(models.Pathway).where(models.Pathway.person_id == person_id)))",
        "select(models.Pathway)))",
        ("tests/test_person_space.py",),
    ),
    M(
        "a person's space downloads another person's passport",
        "services/person_space.py",
        "    if pathway is None or pathway.person_id != person_id:",
        "    if pathway is None:",
        ("tests/test_person_space.py",),
    ),
    M(
        "any partner exports the person's data",
        "services/person_space.py",
        '        raise ServiceError("Seule la structure référente produit',
        '        if False:\n            raise ServiceError("Seule la structure référente produit',
        ("tests/test_person_space.py",),
    ),
    M(
        "opening the person's link spends it",
        "admin_ui/pages/person.py",
        "        person_space.check_link(engine, token)",
        "        person_space.open_space(engine, token)",
        ("tests/test_person_space.py",),
    ),
    M(
        "the person's withdrawal of the passport's sharing is not kept",
        "services/passport.py",
        "            row.withdrawn_at, row.withdrawn_by = now, PERSON",
        "            pass",
        ("tests/test_person_space.py",),
    ),
    M(
        "an immersion lasts longer than a month",
        "services/immersions.py",
        "    if end > start + relativedelta(months=1) - timedelta(days=1):",
        "    if False:",
        ("tests/test_immersions.py",),
    ),
    M(
        "an immersion is renewed twice",
        "services/immersions.py",
        "        if previous.renewal_of:",
        "        if False:",
        ("tests/test_immersions.py",),
    ),
    M(
        "a person spends more than two months with the same host",
        "services/immersions.py",
        "    if total > SAME_HOST_DAYS:",
        "    if False:",
        ("tests/test_immersions.py",),
    ),
    M(
        "any organisation prescribes an immersion",
        "services/immersions.py",
        "    if organisation is None or organisation.type not in allowed:",
        "    if organisation is None:",
        ("tests/test_immersions.py",),
    ),
    M(
        "a party signs on or after the start date",
        "services/immersions.py",
        "    if q.now().date() >= row.start_date:",
        "    if False:",
        ("tests/test_immersions.py",),
    ),
    M(
        "the convention counts as signed after one signature",
        "services/immersions.py",
        "        if set(parties(row)) <= done:",
        "        if done:",
        ("tests/test_immersions.py",),
    ),
    M(
        "the tutor's hiring intention never leads to the job exit",
        "services/immersions.py",
        '    return Bilan(row, "embauche" if entry.hiring == "oui" else "sans_embauche")',
        '    return Bilan(row, "sans_embauche")',
        ("tests/test_immersions.py",),
    ),
    M(
        "an immersion is not tied to the pathway's immersion step",
        "services/immersions.py",
        "            task_id=_immersion_task(session, pathway, user.organisation_id),",
        "            task_id=None,",
        ("tests/test_immersions.py",),
    ),
    M(
        "an immersion step ignores next_if_hiring",
        "definitions/schema.py",
        '"next": data.get("next_if_hiring") if key == "embauche" else data.get("next")',
        '"next": data.get("next")',
        ("tests/test_definitions.py",),
    ),
    M(
        "the tutor's reminders are never queued",
        "services/immersions.py",
        "            for reminder in tutor_reminders(row, bilan.url):\n                session.add(reminder)",
        "            for reminder in tutor_reminders(row, bilan.url):\n                pass",
        ("tests/test_immersions.py",),
    ),
    M(
        "the tutor is reminded at midnight",
        "services/immersions.py",
        "REMINDER_HOUR = time(9, 0)",
        "REMINDER_HOUR = time(0, 0)",
        ("tests/test_immersions.py",),
    ),
    M(
        "small counts are shown to designers",
        "services/evaluation.py",
        "    shown: dict[str, int | None] = {k: (None if 0 < v < threshold else v) for k, v in cells.items()}",
        "    shown: dict[str, int | None] = dict(cells)",
        ("tests/test_evaluation.py",),
    ),
    M(
        "no secondary suppression",
        "services/evaluation.py",
        "    if total_shown and len(hidden) == 1:",
        "    if False:",
        ("tests/test_evaluation.py",),
    ),
    M(
        "the comparison calls any difference significant",
        "services/evaluation.py",
        "    if positive_p < 0.05:",
        "    if positive_p < 1.01:",
        ("tests/test_evaluation.py",),
    ),
    M(
        "the direction reads level-1 escalations",
        "services/reading.py",
        '    direction = user.role == "direction" and escalation.level >= 2',
        '    direction = user.role == "direction"',
        ("tests/test_direction.py",),
    ),
    M(
        "the workflow refuses the direction's decision",
        "workflows/pathway.py",
        '        direction = actor.role == "direction" and escalation.level >= 2',
        "        direction = False",
        ("tests/test_direction.py",),
    ),
    M(
        "a designer spreads a pathway",
        "services/definitions.py",
        '    if actor.role not in ("direction", "admin"):\n        raise ServiceError("L\'essaimage',
        "    if False:\n        raise ServiceError(\"L'essaimage",
        ("tests/test_direction.py",),
    ),
    M(
        "an organisation writes another's directory entry",
        "services/partners.py",
        '    return user.role == "admin" or user.organisation_id == organisation_id',
        "    return True",
        ("tests/test_partners.py",),
    ),
    M(
        "a GTO lead organises in another basin",
        "services/exchanges.py",
        "basin_id in (None, viewer.basin_id)",
        "True",
        ("tests/test_exchanges.py",),
    ),
    M(
        "a session takes more registrations than its places",
        "services/exchanges.py",
        "    if len(_active(session, row.id)) >= row.capacity:",
        "    if False:",
        ("tests/test_exchanges.py",),
    ),
    M(
        "registering twice adds a second registration",
        "services/exchanges.py",
        "    if existing is not None and existing.cancelled_at is None:\n        return Registered(existing, new=False)",
        "    if False:\n        return Registered(existing, new=False)",
        ("tests/test_exchanges.py",),
    ),
    M(
        "an unregistered partner is still reminded",
        "services/exchanges.py",
        "        _withdraw_reminders(\n            session,\n            and_(",
        "        (lambda *_: None)(\n            session,\n            and_(",
        ("tests/test_exchanges.py",),
    ),
    M(
        "a cancelled session keeps its registrants' reminders",
        "services/exchanges.py",
        "            _withdraw_reminders(session, models.Notification.pathway_id == _outbox_group(row))",
        "            pass",
        ("tests/test_exchanges.py",),
    ),
    M(
        "an employer's link registers twice",
        "services/exchanges.py",
        "        link = links.spend(session, token=token, purpose=INVITATION)",
        "        link = links.open_link(engine, token=token, purpose=INVITATION)",
        ("tests/test_exchanges.py",),
    ),
    M(
        "attendance is recorded before the session",
        "services/exchanges.py",
        '        if not started(row):\n            raise ServiceError(\n                f"Les présences',
        '        if False:\n            raise ServiceError(\n                f"Les présences',
        ("tests/test_exchanges.py",),
    ),
    M(
        "the reminder is sent on the session's own day",
        "services/exchanges.py",
        "add_working_days(aware(row.starts_at).astimezone(PARIS), -1)",
        "add_working_days(aware(row.starts_at).astimezone(PARIS), 0)",
        ("tests/test_exchanges.py",),
    ),
    M(
        "the GTO agenda names the latest meeting, not the next",
        "services/exchanges.py",
        "            .order_by(col(models.ExchangeSession.starts_at))\n        ).first()",
        "            .order_by(col(models.ExchangeSession.starts_at).desc())\n        ).first()",
        ("tests/test_exchanges.py",),
    ),
    M(
        "a refresh adds the evaluation's facts to the former ones",
        "services/evaluation_facts.py",
        "        session.execute(delete(models.EvaluationFact))\n",
        "",
        ("tests/test_evaluation.py",),
    ),
    M(
        "a worker refreshes while another worker's refresh is under way",
        "services/evaluation_facts.py",
        "    if under_way and now - claimed_at < CLAIM_LEASE:",
        "    if False:",
        ("tests/test_evaluation.py",),
    ),
    M(
        "the evaluation's figures are computed again before their interval",
        "services/evaluation_facts.py",
        "    if done is not None and now - datetime.fromisoformat(done.value) < every:",
        "    if False:",
        ("tests/test_evaluation.py",),
    ),
    M(
        "the evaluation counts calendar days, not working days",
        "services/evaluation_facts.py",
        "        index += is_working_day(day)",
        "        index += 1",
        ("tests/test_evaluation.py",),
    ),
    M(
        "the evaluation's period ignores its first month",
        "services/evaluation.py",
        "        where.append(col(fact.start_month) >= _month(cohort.started_from))",
        "        pass",
        ("tests/test_evaluation.py",),
    ),
    M(
        "the evaluation's period ignores its last month",
        "services/evaluation.py",
        "        where.append(col(fact.start_month) <= _month(cohort.started_to))",
        "        pass",
        ("tests/test_evaluation.py",),
    ),
    M(
        "registrants are anonymised before their session is a year old",
        "store/retention.py",
        "        ended = select(models.ExchangeSession.id).where(col(models.ExchangeSession.ends_at) < cutoff)",
        "        ended = select(models.ExchangeSession.id)",
        ("tests/test_exchanges.py",),
    ),
    M(
        "two registrations at the same moment both take the last place",
        "services/exchanges.py",
        "    session.execute(update(table).where(col(table.id) == session_id).values(id=col(table.id)))\n",
        "",
        ("tests/test_exchanges.py",),
    ),
    M(
        "a worker whose refresh failed keeps the turn for the lease",
        "worker/runner.py",
        "            evaluation_facts.release_claim(self.engine, claimed_at=now)  # the next look tries again\n",
        "",
        ("tests/test_evaluation.py",),
    ),
    M(
        "the GTO agenda leaves out the stuck pathways not escalated",
        "admin_ui/pages/gto.py",
        '    return [row for row in stuck_rows(engine, stuck.items, lookup) if not row["escalations"]], stuck.total',
        "    return [], stuck.total",
        ("tests/test_exchanges.py",),
    ),
    M(
        "a double click on the invitation form makes two links (the request recorded apart from the link)",
        "services/exchanges.py",
        '            request.finish_in(session, {"session_id": row.id})\n',
        "",
        ("tests/test_exchanges.py::test_an_invitation_sent_twice_at_the_same_moment_makes_one_link",),
    ),
    M(
        "a corrected session keeps its iCalendar SEQUENCE (calendars keep the old event)",
        "services/exchanges.py",
        "        row.revision += 1\n",
        "",
        ("tests/test_exchanges.py::test_a_session_corrected_tells_its_registrants_and_moves_their_reminders",),
    ),
    M(
        "a corrected session leaves the reminders of its former date pending",
        "services/exchanges.py",
        '                    col(models.Notification.kind) == "exchange_rappel",',
        '                    col(models.Notification.kind) == "nothing",',
        ("tests/test_exchanges.py::test_a_session_corrected_tells_its_registrants_and_moves_their_reminders",),
    ),
    M(
        "a corrected session may hold fewer places than registrants",
        "services/exchanges.py",
        '        if values["capacity"] < len(registrations):',
        '        if values["capacity"] < 0:',
        ("tests/test_exchanges.py::test_a_session_corrected_tells_its_registrants_and_moves_their_reminders",),
    ),
    M(
        "the change e-mail gives an employer the Parcours page instead of their own calendar link",
        "services/exchanges.py",
        '    if confirmation is not None and confirmation.body.rstrip("\\n").count("\\n"):',
        "    if False:",
        ("tests/test_exchanges.py::test_a_session_corrected_tells_its_registrants_and_moves_their_reminders",),
    ),
    M(
        "a session sent again unchanged is revised and its registrants e-mailed again",
        "services/exchanges.py",
        "        if not changed:\n            return Changed(row, [], 0)\n",
        "",
        ("tests/test_exchanges.py::test_a_session_corrected_tells_its_registrants_and_moves_their_reminders",),
    ),
    M(
        "a change of programme alone e-mails every registrant",
        "services/exchanges.py",
        "        told = registrations if any(name in TOLD for name in changed) else []",
        "        told = registrations",
        ("tests/test_exchanges.py::test_a_session_corrected_tells_its_registrants_and_moves_their_reminders",),
    ),
    M(
        "anyone signed in corrects a session (no organiser check)",
        "services/exchanges.py",
        '        _require_organiser(viewer, row.basin_id)\n        if row.cancelled_at is not None:\n            raise ServiceError("Cette rencontre est annulée : elle ne se modifie plus.", "conflict")',
        '        if row.cancelled_at is not None:\n            raise ServiceError("Cette rencontre est annulée : elle ne se modifie plus.", "conflict")',
        ("tests/test_exchanges.py::test_a_session_corrected_tells_its_registrants_and_moves_their_reminders",),
    ),
    M(
        "a large organisation's walked list forgets the need-to-know rule",
        "store/views.py",
        "            where.append(followed_by(follow_up_org, from_memberships=not walk))\n",
        "            if not walk:\n                where.append(followed_by(follow_up_org))\n",
        ("tests/test_lists_and_limits.py::test_a_large_organisation_s_list_walks_newest_first_and_counts_up_to_a_cap",),
    ),
    M(
        "a capped count is shown as the exact number",
        "store/views.py",
        "size, min(total, COUNT_CAP) if walk else total, walk and total > COUNT_CAP)",
        "size, min(total, COUNT_CAP) if walk else total, False)",
        ("tests/test_lists_and_limits.py::test_a_large_organisation_s_list_walks_newest_first_and_counts_up_to_a_cap",),
    ),
    M(
        "the pathways list is oldest first",
        "store/views.py",
        "        else [col(models.Pathway.started_at).desc(), col(models.Pathway.id).desc()]",
        "        else [col(models.Pathway.started_at), col(models.Pathway.id)]",
        ("tests/test_lists_and_limits.py::test_a_large_organisation_s_list_walks_newest_first_and_counts_up_to_a_cap",),
    ),
    M(
        "the API answers a second registration as a new one (201)",
        "admin_ui/pages/exchanges.py",
        "    if not done.new:\n        response.status_code = 200\n",
        "",
        ("tests/test_exchanges.py::test_the_api_plans_lists_corrects_registers_and_cancels_under_the_pages_rules",),
    ),
    M(
        "the API shows a session's registrations (contacts) to everyone",
        "admin_ui/pages/exchanges.py",
        "registrations=registrations if found.may_organise else None",
        "registrations=registrations",
        ("tests/test_exchanges.py::test_the_api_plans_lists_corrects_registers_and_cancels_under_the_pages_rules",),
    ),
    M(
        "the SMTP server's connections swap the process-wide warning filters (aiosmtpd's loop lookup)",
        "worker/mail_capture.py",
        "SMTP(self.handler, loop=self.loop, **self.SMTP_kwargs)",
        "SMTP(self.handler, **self.SMTP_kwargs)",
        ("tests/test_outbox.py::test_a_connection_to_the_smtp_server_leaves_the_process_warning_filters_alone",),
    ),
]

REMOVED: list[tuple[str, str]] = [
    # (mutation, why it was removed: it changes nothing a user can observe)
    (
        "a deactivated user keeps their session and token (load_user ignores `active`)",
        "deactivation also bumps the user's session version, which every request checks: two guards"
        " for one rule, each alone unobservable; the password sign-in mutation above stays",
    ),
    (
        "timers keep sleeping toward their next event while the pathway is paused",
        "the watcher re-checks that the pathway is active under the lock before firing, so a timer that"
        " wakes during a pause fires nothing: two guards for one rule, each alone unobservable",
    ),
]


def tree_copy(target: Path) -> None:
    """The work tree as it is now (committed or not), without the virtualenv and caches."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"], check=True, capture_output=True, text=True
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    (target / "node_modules").symlink_to(ROOT / "node_modules")


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    return done.returncode, failed[0] if failed else done.stdout.strip().splitlines()[-1] if done.stdout else ""


def main() -> None:
    parser = argparse.ArgumentParser(description="Curated mutation score")
    parser.add_argument("-k", default="", help="only the mutations whose name contains this text")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.k.lower() in m.name.lower()]
    with tempfile.TemporaryDirectory(prefix="parcours-mutants-") as tmp:
        tree = Path(tmp)
        tree_copy(tree)
        print(f"{len(chosen)} mutations; baseline run of their tests…", flush=True)
        baseline = tuple(sorted({t for m in chosen for t in m.tests}))
        code, summary = run_tests(tree, baseline)
        if code != 0:
            sys.exit(f"the tests fail without any mutation ({summary}): fix them first")
        caught = 0
        for n, mutation in enumerate(chosen, start=1):
            path = tree / mutation.file
            original = path.read_text(encoding="utf-8")
            if original.count(mutation.old) != 1:
                print(f"{n:2}. STALE   {mutation.name}: the code to mutate is no longer in {mutation.file}")
                continue
            path.write_text(original.replace(mutation.old, mutation.new), encoding="utf-8")
            started = time.monotonic()
            try:
                code, summary = run_tests(tree, mutation.tests)
            finally:
                path.write_text(original, encoding="utf-8")
            verdict = "caught " if code == 1 else "MISSED " if code == 0 else f"error {code}"
            caught += code == 1
            print(f"{n:2}. {verdict} {mutation.name}  [{summary}] ({time.monotonic() - started:.0f} s)", flush=True)
        score = 100 * caught / len(chosen) if chosen else 0
        print(f"\nScore: {caught}/{len(chosen)} mutations caught ({score:.0f} %)")


if __name__ == "__main__":
    main()
