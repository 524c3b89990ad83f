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
        "a retried commit sends its e-mails again",
        "activities/pathway_activities.py",
        '            if row.status == "pending" and not await self._deliver(row):',
        "            if not await self._deliver(row):",
        ("tests/test_regressions.py::test_the_same_commit_or_notification_twice_sends_one_email",),
    ),
    M(
        "a retried send_notification sends its e-mail again",
        "activities/pathway_activities.py",
        '(self._record, notification)\n        if row.status == "pending" and not await self._deliver(row):',
        "(self._record, notification)\n        if not await self._deliver(row):",
        ("tests/test_regressions.py::test_the_same_commit_or_notification_twice_sends_one_email",),
    ),
    M(
        "an organisation that left the follow-up group still reads the pathway",
        "store/views.py",
        "        member.organisation_id == organisation_id, col(member.until).is_(None)\n    )",
        "        member.organisation_id == organisation_id\n    )",
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
