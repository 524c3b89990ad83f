"""Record representative pathway histories of a release, for the replay test (`make histories`).

    python tests/histories/record.py --release v1.0.0   # runs the tagged code, writes tests/histories/v1.0.0/
    python tests/histories/record.py --release v1.1.0 --code .   # the working tree, once tagged

It starts its own Temporal dev server, SMTP sink and SQLite read model, runs one worker of the
release's code and drives the scenarios below through the workflow's own contract (its input
and its updates, which only ever change additively), so the same script drives every release.
Each closed run's history is written as `<scenario>.json` (a run that continued as new gives
one file per run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", required=True, help="release name, e.g. v1.0.0 (a git tag unless --code)")
    parser.add_argument("--code", help="source tree to run (default: a checkout of the tag)")
    parser.add_argument("--out", help="output folder (default: tests/histories/<release>)")
    args = parser.parse_args()
    out = Path(args.out or HERE / args.release).resolve()
    if os.environ.get("PARCOURS_RECORD_CHILD"):
        asyncio.run(record(out))
        sys.stdout.flush()
        os._exit(0)  # temporalio/sdk-python#300: end deliberately
    with tempfile.TemporaryDirectory(prefix="parcours-record-") as tmp:
        code = Path(args.code).resolve() if args.code else checkout(args.release, Path(tmp) / "code")
        env = {**os.environ, "PARCOURS_RECORD_CHILD": "1", "PYTHONPATH": str(code)}
        # Run from the release's tree so that its modules, not the working tree's, are imported.
        command = [sys.executable, str(Path(__file__).resolve()), "--release", args.release, "--out", str(out)]
        sys.exit(subprocess.call(command, cwd=code, env=env))


def checkout(tag: str, target: Path) -> Path:
    """The tagged tree, extracted without touching the repository's work tree."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", tag], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


# --- The scenarios ----------------------------------------------------------------------------


async def record(out: Path) -> None:
    from sqlalchemy.engine import Engine

    from definitions.loader import load_file, parse_text
    from definitions.territory import CATALOG_DIR, DEMO_TERRITORY, load_territory
    from parcours.settings import Settings
    from store import queries as q
    from store.db import make_engine
    from worker.mail_capture import SmtpController
    from worker.runner import build_worker
    from worker.temporal_server import DevServer, free_port
    from workflows.model import Actor, PathwayInput, PathwayState, UpdateResult  # 1.0.0 has no contract module

    territory = load_territory(DEMO_TERRITORY)

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    smtp_port = free_port()
    smtp = SmtpController(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    tmp = Path(tempfile.mkdtemp(prefix="parcours-record-db-"))
    database_url = f"sqlite:///{tmp / 'parcours.db'}"
    engine: Engine = make_engine(database_url)
    prepare_read_model(engine, database_url)
    q.load_territory(engine, territory=territory)
    server = DevServer(port=free_port(), log_file=tmp / "temporal.log")
    client = await server.start()
    settings = Settings(database_url=database_url, smtp_host="127.0.0.1", smtp_port=smtp_port, task_queue="record")
    catalog = {path.stem: load_file(path) for path in sorted(CATALOG_DIR.glob("*.yaml"))}
    tests_flows: dict[str, Any] = {}
    # The tests' small definitions, as the release under record wrote them.
    flows = Path.cwd() / "tests" / "flows.py"
    exec(compile(flows.read_text(encoding="utf-8"), str(flows), "exec"), tests_flows)

    def definition_of(text: str) -> Any:
        return parse_text(text, source="record").model_copy(update={"version": 1})

    def parties(definition: Any, basin: str) -> dict[str, str]:
        serving: dict[str, str] = {}
        for org in sorted(territory.organisations, key=lambda o: o.id):
            if basin in org.basins or "all" in org.basins:
                serving.setdefault(org.type, org.id)
        return {
            task.role: serving[task.role.removeprefix("partner:")]
            for task in definition.all_tasks()
            if task.role.startswith("partner:")
        }

    camille = Actor(user_id="u-camille", organisation_id="departement74", role="caseworker")
    julien = Actor(user_id="u-julien", organisation_id="ft_annecy", role="caseworker")
    lea = Actor(user_id="u-lea", organisation_id="spie74", role="gto_lead", basin_id="annecien")
    written: list[str] = []

    class Run:
        def __init__(self, name: str, definition: Any, *, basin: str = "annecien", limit: int = 2000) -> None:
            self.name, self.definition, self.basin, self.limit = name, definition, basin, limit
            self.pathway_id = f"P-HIST-{name.upper().replace('_', '-')}"

        @property
        def handle(self) -> Any:
            return client.get_workflow_handle(self.pathway_id)  # the latest run, across continue-as-new

        async def start(self, referent: str = "departement74") -> Run:
            await client.start_workflow(
                "PathwayWorkflow",
                PathwayInput(
                    pathway_id=self.pathway_id,
                    definition=self.definition,
                    basin_id=self.basin,
                    referent_org=referent,
                    person_ref=f"pers-{uuid.uuid4().hex[:12]}",
                    parties=parties(self.definition, self.basin),
                    started_by=camille,
                    history_event_limit=self.limit,
                ),
                id=self.pathway_id,
                task_queue=settings.task_queue,
            )
            await self.handle.execute_update("ready", result_type=str)
            return self

        async def state(self) -> PathwayState:
            state: PathwayState = await self.handle.query("state_view", result_type=PathwayState)
            return state

        async def task(self, step_id: str) -> str:
            items = (await self.state()).items.values()
            return next(i.id for i in items if i.step_id == step_id and i.status == "open")

        async def update(self, name: str, command: Any) -> UpdateResult:
            result: UpdateResult = await self.handle.execute_update(name, command, result_type=UpdateResult)
            return result

        async def complete(self, step_id: str, actor: Any, outcome: str = "fait", **routing: str) -> None:
            from workflows.model import CompleteTask

            item_id = await self.task(step_id)
            filled = list(routing)
            await self.update(
                "complete_task",
                CompleteTask(item_id=item_id, actor=actor, outcome=outcome, filled=filled, routing=routing),
            )

        async def until(self, check: Callable[[PathwayState], bool], what: str, timeout: float = 60) -> PathwayState:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                state = await self.state()
                if check(state):
                    return state
                await asyncio.sleep(0.2)
            raise RuntimeError(f"{self.name}: timed out waiting for {what}")

        async def escalation(self, level: int = 1) -> str:
            state = await self.until(
                lambda s: any(e.level == level and e.status == "open" for e in s.escalations.values()),
                f"escalation level {level}",
            )
            return next(e.id for e in state.escalations.values() if e.level == level and e.status == "open")

        async def save(self) -> None:
            """Write every run of this workflow id (one per continue-as-new), oldest first."""
            runs = [w async for w in client.list_workflows(f"WorkflowId = '{self.pathway_id}'")]
            runs.sort(key=lambda w: w.start_time)
            for n, run in enumerate(runs, start=1):
                history = await client.get_workflow_handle(self.pathway_id, run_id=run.run_id).fetch_history()
                name = self.name if len(runs) == 1 else f"{self.name}_run{n}"
                (out / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
                written.append(name)

    from workflows.model import AddModule, GtoDecision, PauseClock, ReassignTask, ResumeClock, SkipStep

    scenarios: list[tuple[str, Callable[[], Awaitable[Run]]]] = []

    def scenario(function: Callable[[], Awaitable[Run]]) -> Callable[[], Awaitable[Run]]:
        scenarios.append((function.__name__, function))
        return function

    for catalog_id, definition in catalog.items():
        referent = {"jeune_neet_mission_locale": "ml_annecy", "deld_immersion": "ft_annecy"}.get(
            catalog_id, "cap_emploi74" if catalog_id == "boe_cap_emploi" else "departement74"
        )

        async def started(definition: Any = definition, catalog_id: str = catalog_id, referent: str = referent) -> Run:
            # Working-day deadlines: the first task open with its reminders and escalations pending.
            run = await Run(f"catalog_{catalog_id}_started", definition.model_copy(update={"version": 1})).start(
                referent=referent
            )
            await run.until(lambda s: any(i.kind == "task" for i in s.items.values()), "first task")
            return run

        started.__name__ = f"catalog_{catalog_id}_started"
        scenario(started)

    @scenario
    async def guide_run_to_end() -> Run:
        readme = (Path.cwd() / "README.md").read_text(encoding="utf-8")
        match = re.search(r"<!-- guide-example[^>]*-->\s*```yaml\n(.*?)```", readme, re.DOTALL)
        assert match, "README lost its guide example"
        run = await Run("guide_run_to_end", definition_of(match.group(1)), basin="chablais").start()
        association = Actor(user_id="u-asso", organisation_id="mobilite_chablais", role="caseworker")
        await run.complete("diagnostic_mobilite", association, besoin="vehicule", permis="True")
        await run.complete("aide_vehicule", camille, outcome="accordee")
        await run.until(lambda s: s.status == "closed", "end")
        return run

    @scenario
    async def pause_and_resume() -> Run:
        run = await Run("pause_and_resume", definition_of(tests_flows["flow"]("all"))).start()
        await run.update("pause", PauseClock(actor=camille))
        await run.update("resume", ResumeClock(actor=camille))
        await run.complete("accueil", camille, besoin="emploi")
        return run

    @scenario
    async def module_added() -> Run:
        run = await Run("module_added", definition_of(tests_flows["flow"]("all"))).start()
        await run.update("add_module", AddModule(module_id="mobilite", actor=camille))
        association = Actor(user_id="u-asso", organisation_id="mobilite_annecy", role="caseworker")
        await run.complete("mobilite_diag", association)
        await run.complete("mobilite_solution", camille)
        return run

    @scenario
    async def optional_step_skipped() -> Run:
        run = await Run("optional_step_skipped", definition_of(tests_flows["flow"]("any"))).start()
        await run.complete("accueil", camille, besoin="emploi")
        await run.complete("appui_ft", julien)
        await run.update("skip_step", SkipStep(item_id=await run.task("suivi"), actor=camille))
        await run.until(lambda s: s.status == "closed", "end after the wait")
        return run

    @scenario
    async def task_reassigned() -> Run:
        run = await Run("task_reassigned", definition_of(tests_flows["flow"]("all"))).start()
        item = await run.task("accueil")
        await run.update("reassign_task", ReassignTask(item_id=item, actor=camille, organisation_id="caf74"))
        caf = Actor(user_id="u-ines", organisation_id="caf74", role="caseworker")
        await run.complete("accueil", caf, besoin="social")
        await run.until(lambda s: s.status == "closed", "social exit")
        return run

    for action in ("reassign", "extend", "add_step", "close", "unblock"):

        async def decided(action: str = action) -> Run:
            run = await Run(f"gto_decision_{action}", definition_of(tests_flows["fast"](level2="PT1H"))).start()
            escalation = await run.escalation(1)
            extra = {
                "reassign": {"organisation_id": "caf74"},
                "extend": {"extend_by": "PT1H"},
                "add_step": {"module_id": "renfort"},
                "close": {"exit_reason": "abandon"},
                "unblock": {},
            }[action]
            await run.update(
                "decide_escalation", GtoDecision(escalation_id=escalation, actor=lea, action=action, **extra)
            )
            return run

        decided.__name__ = f"gto_decision_{action}"
        scenario(decided)

    @scenario
    async def escalation_both_levels() -> Run:
        run = await Run("escalation_both_levels", definition_of(tests_flows["fast"](level2="PT1S"))).start()
        await run.escalation(2)
        await run.complete("tache", julien)
        return run

    @scenario
    async def continue_as_new() -> Run:
        run = await Run("continue_as_new", definition_of(tests_flows["LOOP"]), limit=60).start()
        first = (await run.handle.describe()).run_id
        for _ in range(30):
            try:
                await run.complete("boucle", camille, outcome="encore")
            except Exception:  # the run is handing over to its successor
                await asyncio.sleep(0.2)
            if (await run.handle.describe()).run_id != first:
                break
        else:
            raise RuntimeError("continue_as_new: no new run after 30 loops")
        await run.until(lambda s: bool(s.items), "the carried task")
        await run.complete("boucle", camille, outcome="fini")
        await run.until(lambda s: s.status == "closed", "end")
        return run

    for completion in ("all", "any"):

        async def joint(completion: str = completion) -> Run:
            run = await Run(f"joint_accompaniment_{completion}", definition_of(tests_flows["flow"](completion))).start()
            await run.complete("accueil", camille, besoin="emploi")
            await run.complete("appui_ft", julien)
            if completion == "all":
                await run.complete("appui_referent", camille)
            await run.until(lambda s: any(i.step_id == "suivi" for i in s.items.values()), "the follow-up step")
            return run

        joint.__name__ = f"joint_accompaniment_{completion}"
        scenario(joint)

    @scenario
    async def timers_pending() -> Run:
        # The usual state in production: a task open for weeks, a reminder sent, the rest to come.
        source = tests_flows["timed"](deadline="PT1H", reminder_before="PT59M58S", reminder_after="PT1H")
        run = await Run("timers_pending", definition_of(source)).start()
        await run.until(lambda s: any("reminder:0" in i.fired for i in s.items.values()), "first reminder")
        return run

    await asyncio.sleep(0)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    async with build_worker(client, engine=engine, settings=settings):
        runs = []
        for name, function in scenarios:
            print(f"  {name}", flush=True)
            runs.append(await function())
        for run in runs:
            await run.save()
    (out / "MANIFEST.json").write_text(json.dumps({"histories": sorted(written)}, indent=1) + "\n")
    print(f"{len(written)} histories written to {out}", flush=True)
    server.stop()
    smtp.stop()


def prepare_read_model(engine: Any, url: str) -> None:
    """Tables by migrations where the release has them, else as v1.0.0 made them."""
    try:
        from store.migrations import upgrade_to_head
    except ImportError:
        from store.db import create_tables

        create_tables(engine)
    else:
        upgrade_to_head(engine)


if __name__ == "__main__":
    main()
