"""Engine benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/engine.py [--pathways N] [--timers N] [--profile DIR] [--try-cut]
    (smoke: --pathways 20 --timers 50)

One run against an embedded Temporal dev server (DevServer, SQLite db file in a temp dir, as
`parcours dev`), the read model on a SQLite file, an aiosmtpd sink answering 250 OK. Every worker
runs in its own process with the Parcours worker's sandbox, cache and concurrency
(bench/_worker_process.py), each on its own task queue, with compiled modules cached (in the
temp dir) as an installed package has them.

(a) throughput: N pathways of a 4-task definition, driven 20 at once, in turn by
    - the bare baseline (bench/baseline.py): start, 4 updates each running a no-op activity;
    - the fair baseline (bench/fair_baseline.py): the hand-written Temporal application for the
      same pathway: person row, update-with-start, then 4 updates, each step one activity writing
      the same read-model tables in one transaction and sending the same e-mail; once with
      regular activities, once with local ones;
    - Parcours: PathwayService.start_pathway, then 4 × complete_task; again as this dev
      environment runs it (PYTHONDONTWRITEBYTECODE=1: the workflow module compiled per run);
      with --try-cut, again with workflows.pathway passed through the sandbox.
    Printed: pathways/s, CPU per pathway (the worker's, and all processes'), the ratios.
(b) deadline burst: --timers pathways whose task deadlines all fall due in the same second
    (each started with the deadline that ends at one instant T), one escalation level 5 s after
    it. Lateness = Escalation.opened_at (workflow.now() at firing) and the wall-clock instant the
    row became visible (read model polled every 200 ms), each minus the task's due_at + 5 s.
    Once with one worker process, once with two (--one-worker-only skips it).
(c) memory: worker RSS (psutil every 0.5 s) idle, with every pathway of (b) open, peak; RSS per
    cached run; replay time of a pathway's history (what a run evicted from the cache costs).
--profile DIR: py-spy record (raw collapsed stacks) of the Parcours worker during an extra,
    uncounted pass of (a) and during the one-worker burst; the top entries are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from sqlalchemy import select  # noqa: E402
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHistory  # noqa: E402
from temporalio.common import (  # noqa: E402
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.worker import Replayer  # noqa: E402
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions  # noqa: E402

from bench import figures  # noqa: E402
from bench.baseline import BaselineWorkflow  # noqa: E402
from bench.engine_profile import Profiler, summarise  # noqa: E402
from bench.fair_activities import FairActor, FairAnswer, FairComplete, FairStart  # noqa: E402
from bench.fair_baseline import FairWorkflow  # noqa: E402
from definitions.calendar import DEFAULT_CLOSES, DEFAULT_OPENS, work_calendar  # noqa: E402
from definitions.durations import PARIS, Delay  # noqa: E402
from definitions.loader import parse_text  # noqa: E402
from definitions.schema import Definition, TaskStep  # noqa: E402
from definitions.territory import DEMO_TERRITORY, load_territory  # noqa: E402
from services.pathways import PathwayService  # noqa: E402
from store import models  # noqa: E402
from store import queries as q  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.migrations import upgrade_to_head  # noqa: E402
from worker.mail_capture import SmtpController  # noqa: E402
from worker.runner import DETERMINISTIC_MODULES, workflow_runner  # noqa: E402
from worker.temporal_server import DevServer, free_port  # noqa: E402
from workflows import search_attributes as sa  # noqa: E402
from workflows.contract import Actor  # noqa: E402
from workflows.model import PathwayInput  # noqa: E402
from workflows.pathway import PathwayWorkflow  # noqa: E402

ACTOR_EMAIL = "camille.martin@example.org"  # caseworker of departement74, the referent below
BASIN, REFERENT = "annecien", "departement74"
PERSON = {"first_name": "Alex", "last_name": "Bench", "consent": True}
ESCALATE_AFTER = 5.0
TASKS = 4
FAIR_DEADLINE_SECONDS = 14 * 86400.0  # "10 working days", as a plain duration
GOAL_FAIR, GOAL_BARE, GOAL_BURST_P99, GOAL_RSS_MB = 1.0, 0.8, 20.0, 400.0
CUT_ENV = {"PARCOURS_BENCH_PASSTHROUGH_WORKFLOW": "1"}  # bench/_worker_process.py use_passthrough_runner
PILOT = 100  # (b) pathways started first to measure the start rate (left open, not measured)
BURST_PROFILE_RATE = 50  # samples/s while the one-worker burst is measured: half py-spy's default, half its CPU

FOUR_TASKS = """
id: bench_four_tasks
title: Bench – quatre tâches
status: active
basins: [all]
start: t1
steps:
  - {kind: task, id: t1, title: Tâche 1, role: referent, deadline: 10 working days, outcomes: [{id: fait, label: Fait, next: t2}]}
  - {kind: task, id: t2, title: Tâche 2, role: referent, deadline: 10 working days, outcomes: [{id: fait, label: Fait, next: t3}]}
  - {kind: task, id: t3, title: Tâche 3, role: referent, deadline: 10 working days, outcomes: [{id: fait, label: Fait, next: t4}]}
  - {kind: task, id: t4, title: Tâche 4, role: referent, deadline: 10 working days, outcomes: [{id: fait, label: Fait, next: fin}]}
  - {kind: end, id: fin, title: Fin, exit_reason: emploi_durable}
"""

ESCALATION = f"""
id: bench_escalation
title: Bench – escalade
status: active
basins: [all]
start: tache
escalation:
  - {{to: gto, after: PT{ESCALATE_AFTER:g}S}}
steps:
  - {{kind: task, id: tache, title: Tâche à échéance, role: referent, deadline: PT60S, outcomes: [{{id: fait, label: Fait, next: fin}}]}}
  - {{kind: end, id: fin, title: Fin, exit_reason: emploi_durable}}
"""
"""(b)'s definition; each pathway gets its own copy whose deadline ends at the burst's instant."""


def say(text: str = "") -> None:
    print(text, flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    if not values:
        return "n/a"
    v = [x * scale for x in values]
    return (
        f"p50 {pct(v, 50):.3f}{unit}  p95 {pct(v, 95):.3f}{unit}  p99 {pct(v, 99):.3f}{unit}  "
        f"max {max(v):.3f}{unit}  (n={len(v)})"
    )


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- Children: dev server, worker processes, SMTP sink ----------------------------------------


class CountingSink:
    """aiosmtpd handler: accept everything (250 OK), count messages."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


@dataclass
class Children:
    tmp: Path
    server: DevServer | None = None
    smtp: SmtpController | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    profiler: Profiler | None = None

    def start_worker(
        self,
        name: str,
        *,
        kind: str,
        task_queue: str,
        database_url: str,
        smtp_port: int,
        bytecode: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> psutil.Process:
        """A worker process. With `bytecode`, Python caches compiled modules (in the temp dir, not the
        source tree), as an installed package has them; without, it compiles every module it
        imports from source, including the workflow module the sandbox imports again for each run
        (PYTHONDONTWRITEBYTECODE=1 and no __pycache__: this dev environment)."""
        assert self.server is not None
        ready = self.tmp / f"{name}.ready"
        cached = {"PYTHONPYCACHEPREFIX": str(self.tmp / "pycache")} if bytecode else {"PYTHONDONTWRITEBYTECODE": "1"}
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")},
            **cached,
            **(extra_env or {}),
            "PARCOURS_TEMPORAL_ADDRESS": self.server.address,
            "PARCOURS_DATABASE_URL": database_url,
            "PARCOURS_TASK_QUEUE": task_queue,
            "PARCOURS_SMTP_HOST": "127.0.0.1",
            "PARCOURS_SMTP_PORT": str(smtp_port),
            "PARCOURS_BENCH_KIND": kind,
            "PARCOURS_BENCH_READY_FILE": str(ready),
        }
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "_worker_process.py")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.workers[name] = process
        deadline = time.monotonic() + 90
        while not ready.exists():
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited with {process.returncode}; see {self.tmp / (name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} not ready after 90 s")
            time.sleep(0.1)
        return psutil.Process(process.pid)

    def stop_worker(self, name: str) -> None:
        process = self.workers.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        if self.profiler is not None:
            try:
                self.profiler.stop_all()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        for name in list(self.workers):
            try:
                self.stop_worker(name)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        if self.server is not None:
            try:
                self.server.stop()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        if self.smtp is not None:
            try:
                self.smtp.stop()
            except Exception:  # noqa: BLE001
                traceback.print_exc()


def cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


class CpuMeter:
    """CPU seconds each process used during a phase: shows where the time goes."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.start = {name: cpu_seconds(p) for name, p in processes.items()}
        self.t0 = time.monotonic()

    def spent(self, name: str) -> float:
        return cpu_seconds(self.processes[name]) - self.start[name]

    def total(self) -> float:
        return sum(self.spent(name) for name in self.processes)

    def report(self) -> str:
        wall = time.monotonic() - self.t0
        parts = [f"{name} {cpu_seconds(p) - self.start[name]:.1f}s" for name, p in self.processes.items()]
        return f"CPU over {wall:.1f}s wall (2 cores = {2 * wall:.0f} core-s): " + ", ".join(parts)


class RssSampler:
    def __init__(self, process: psutil.Process, interval: float = 0.5) -> None:
        self.process = process
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss))
            except psutil.Error:
                return
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def peak_mb(self) -> float:
        return max((r for _, r in self.samples), default=0) / 2**20

    @property
    def first_mb(self) -> float:
        return self.samples[0][1] / 2**20 if self.samples else 0.0

    @property
    def last_mb(self) -> float:
        return self.samples[-1][1] / 2**20 if self.samples else 0.0

    def mb_at(self, moment: float) -> float:
        """The last sample taken at or before `moment` (time.monotonic())."""
        before = [r for t, r in self.samples if t <= moment]
        return (before[-1] if before else 0) / 2**20


# --- Driver -----------------------------------------------------------------------------------


async def drive(
    n: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float], list[BaseException]]:
    """Run `one(i)` for i < n, at most `concurrency` at once; return elapsed, durations, errors."""
    semaphore = asyncio.Semaphore(concurrency)
    durations: list[float] = []

    async def guarded(i: int) -> None:
        async with semaphore:
            t = time.perf_counter()
            await one(i)
            durations.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    results = await asyncio.gather(*(guarded(i) for i in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - t0
    errors = [r for r in results if isinstance(r, BaseException)]
    return elapsed, durations, errors


def report_errors(label: str, errors: list[BaseException]) -> None:
    if errors:
        say(f"  !! {label}: {len(errors)} failed; first: {type(errors[0]).__name__}: {errors[0]}")


# --- (a) Throughput -----------------------------------------------------------------------------


@dataclass
class Contender:
    """One implementation measured in (a): its rate and CPU."""

    label: str
    unit: str
    rate: float = 0.0
    count: int = 0
    worker_cpu: float = 0.0
    all_cpu: float = 0.0

    @property
    def worker_ms(self) -> float:
        return 1000 * self.worker_cpu / self.count if self.count else float("nan")

    @property
    def all_ms(self) -> float:
        return 1000 * self.all_cpu / self.count if self.count else float("nan")


@dataclass
class Throughput:
    bare: Contender
    fair: Contender
    fair_local: Contender
    parcours: Contender
    parcours_src: Contender
    parcours_cut: Contender | None = None
    parcours_ids: list[str] = field(default_factory=list)


class Drivers:
    """What a front end does for one pathway, for each contender (same driver process, same
    concurrency). Each records its calls' latencies by name."""

    def __init__(self, client: Client, services: dict[str, PathwayService], queues: dict[str, str]) -> None:
        self.client = client
        self.services = services
        service = services["parcours"]
        self.engine = service.engine
        self.queues = queues
        self.actor = service.actor_for(ACTOR_EMAIL)
        self.fair_actor = FairActor(user_id=self.actor.user_id, organisation_id=self.actor.organisation_id)
        self.run_id = uuid.uuid4().hex[:6]
        self.latency: dict[str, list[float]] = {}
        self.parcours_ids: list[str] = []

    def _took(self, name: str, since: float) -> None:
        self.latency.setdefault(name, []).append(time.perf_counter() - since)

    async def bare(self, i: int, tag: str = "m") -> None:
        t = time.perf_counter()
        handle = await self.client.start_workflow(
            BaselineWorkflow.run, TASKS, id=f"bare-{self.run_id}-{tag}{i}", task_queue=self.queues["bare"]
        )
        self._took("bare start_workflow", t)
        for n in range(TASKS):
            t = time.perf_counter()
            await handle.execute_update(BaselineWorkflow.step, n)
            self._took("bare update", t)
        await handle.result()

    async def fair(self, i: int, tag: str = "m", *, local: bool = False) -> None:
        """The hand-written application's front end: the person row, update-with-start (answers
        once the first task is in the read model), then per task: read it, check who acts, update."""
        name = "fair-local" if local else "fair"
        t = time.perf_counter()
        person_id = q.create_person(
            self.engine,
            data={"first_name": "Alex", "last_name": "Bench", "consent_at": q.now()},
            created_by=self.actor.user_id,
        )
        pathway_id = f"F{'L' if local else 'R'}-{self.run_id}-{tag}{i}"
        start = FairStart(
            pathway_id=pathway_id,
            person_id=person_id,
            definition_id="bench_fair_four_tasks",
            definition_title="Bench – quatre tâches (écrit à la main)",
            basin_id=BASIN,
            referent_org=REFERENT,
            task_titles=[f"Tâche {n + 1}" for n in range(TASKS)],
            deadline_seconds=FAIR_DEADLINE_SECONDS,
            started_by=self.fair_actor,
            local_activities=local,
        )
        operation = WithStartWorkflowOperation(
            FairWorkflow.run,
            start,
            id=pathway_id,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self.queues["fair"],
        )
        task_id = await self.client.execute_update_with_start_workflow(
            FairWorkflow.ready, start_workflow_operation=operation
        )
        self._took(f"{name} start", t)
        handle = self.client.get_workflow_handle(pathway_id)
        for n in range(TASKS):
            t = time.perf_counter()
            task = q.get_task(self.engine, task_id=task_id)
            if task is None or task.status != "open" or task.organisation_id != self.actor.organisation_id:
                raise RuntimeError(f"task {task_id} not open for {self.actor.organisation_id}")
            answer: FairAnswer = await handle.execute_update(
                FairWorkflow.complete, FairComplete(task_id=task_id, actor=self.fair_actor, outcome="fait")
            )
            self._took(f"{name} complete", t)
            if n < TASKS - 1:
                task_id = answer.opened[0]
        await handle.result()

    async def parcours(self, i: int, tag: str = "m", *, variant: str = "parcours") -> None:
        service = self.services[variant]
        t = time.perf_counter()
        pathway_id = await service.start_pathway(
            definition_id="bench_four_tasks", basin_id=BASIN, referent_org=REFERENT, person=PERSON, actor=self.actor
        )
        self._took("parcours start_pathway", t)
        self.parcours_ids.append(pathway_id)
        task_id = q.list_tasks(self.engine, pathway_id=pathway_id, status="open")[0].id
        for n in range(TASKS):
            t = time.perf_counter()
            result = await service.complete_task(task_id=task_id, actor=self.actor, outcome="fait", data={})
            self._took("parcours complete_task", t)
            if n < TASKS - 1:
                task_id = result.opened[0]
        await self.client.get_workflow_handle(pathway_id).result()


async def measure(
    args: argparse.Namespace,
    contender: Contender,
    one: Callable[[int], Awaitable[None]],
    meters: dict[str, psutil.Process],
    worker: str,
    drivers: Drivers,
) -> None:
    say(f"(a) {contender.label}: {args.pathways} pathways, {args.concurrency} at once …")
    drivers.latency.clear()
    cpu = CpuMeter(meters)
    elapsed, durations, errors = await drive(args.pathways, args.concurrency, one)
    report_errors(contender.label, errors)
    contender.count = args.pathways - len(errors)
    contender.rate = contender.count / elapsed
    contender.worker_cpu, contender.all_cpu = cpu.spent(worker), cpu.total()
    say(f"    {contender.rate:.1f} {contender.unit}/s ({elapsed:.1f}s); per pathway {spread(durations)}")
    for name, values in drivers.latency.items():
        say(f"    {name} {spread(values, 'ms', 1000)}")
    say(f"    {cpu.report()}")
    say(f"    CPU per pathway: worker {contender.worker_ms:.1f} ms, all processes {contender.all_ms:.1f} ms")


async def bench_throughput(
    args: argparse.Namespace,
    client: Client,
    service: PathwayService,
    queues: dict[str, str],
    workers: dict[str, psutil.Process],
    common: dict[str, psutil.Process],
    profiler: Profiler | None,
) -> Throughput:
    variants = [name for name in queues if name.startswith("parcours")]
    services = {name: PathwayService(client, service.engine, task_queue=queues[name]) for name in variants}
    drivers = Drivers(client, services, queues)
    out = Throughput(
        bare=Contender("bare baseline", "workflows"),
        fair=Contender("fair baseline (activities)", "pathways"),
        fair_local=Contender("fair baseline (local activities)", "pathways"),
        parcours=Contender("Parcours", "pathways"),
        parcours_src=Contender("Parcours, workflow module compiled per run", "pathways"),
    )
    warm = min(5, args.pathways)
    say(f"(a) warm-up: {warm} of each, not counted")
    await drive(warm, args.concurrency, lambda i: drivers.bare(i, "w"))
    await drive(warm, args.concurrency, lambda i: drivers.fair(i, "w"))
    await drive(warm, args.concurrency, lambda i: drivers.fair(i, "wl", local=True))
    for variant in variants:
        await drive(warm, args.concurrency, lambda i, v=variant: drivers.parcours(i, f"w{v}", variant=v))  # type: ignore[misc]

    await measure(args, out.bare, drivers.bare, common | {"bare-worker": workers["bare"]}, "bare-worker", drivers)
    fair_meters = common | {"fair-worker": workers["fair"]}
    await measure(args, out.fair, drivers.fair, fair_meters, "fair-worker", drivers)
    await measure(args, out.fair_local, lambda i: drivers.fair(i, local=True), fair_meters, "fair-worker", drivers)
    drivers.parcours_ids.clear()
    parcours_meters = common | {"parcours-worker": workers["parcours"]}
    await measure(args, out.parcours, drivers.parcours, parcours_meters, "parcours-worker", drivers)
    out.parcours_ids = list(drivers.parcours_ids)
    await measure(
        args,
        out.parcours_src,
        lambda i: drivers.parcours(i, "s", variant="parcours-src"),
        common | {"parcours-worker": workers["parcours-src"]},
        "parcours-worker",
        drivers,
    )
    if "parcours-cut" in queues:
        out.parcours_cut = Contender("Parcours, workflows.pathway passed through (cut)", "pathways")
        await measure(
            args,
            out.parcours_cut,
            lambda i: drivers.parcours(i, "c", variant="parcours-cut"),
            common | {"parcours-worker": workers["parcours-cut"]},
            "parcours-worker",
            drivers,
        )

    if profiler is not None:
        say(f"(a) profile: {args.pathways} more Parcours pathways under py-spy (not counted above) …")
        profiler.start("parcours-a", workers["parcours"].pid)
        cpu = CpuMeter(parcours_meters)
        elapsed, _, errors = await drive(args.pathways, args.concurrency, lambda i: drivers.parcours(i, "p"))
        report_errors("profiled Parcours", errors)
        recording, wall, spy_cpu = profiler.stop("parcours-a")
        say(f"    {(args.pathways - len(errors)) / elapsed:.1f} pathways/s under the profiler; {cpu.report()}")
        say(f"    py-spy used {spy_cpu:.1f}s CPU over {wall:.0f}s; raw stacks: {recording.path}")
        worker_cpu = cpu.spent("parcours-worker")
        say(f"    worker CPU per pathway {1000 * worker_cpu / max(1, args.pathways - len(errors)):.1f} ms")
        for line in summarise(
            recording.path, rate=recording.rate, per=args.pathways - len(errors), per_label="pathway"
        ):
            say(line)
    return out


# --- (b) Deadline burst -------------------------------------------------------------------------


@dataclass
class Burst:
    workers: int
    deadline_s: float = 0.0
    pilot: int = 0
    started: int = 0
    start_phase_s: float = 0.0
    overran: int = 0
    due_first: datetime | None = None
    due_last: datetime | None = None
    fired: list[float] = field(default_factory=list)
    visible: list[float] = field(default_factory=list)
    escalated: int = 0
    mails: int = 0
    worker_cpu: float = 0.0
    idle_mb: list[float] = field(default_factory=list)
    open_mb: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    server_peak_mb: float = 0.0
    profiled: bool = False

    @property
    def due_spread(self) -> float:
        if self.due_first is None or self.due_last is None:
            return float("nan")
        return (self.due_last - self.due_first).total_seconds()

    @property
    def open_runs(self) -> int:
        return self.started + self.pilot

    @property
    def kb_per_run(self) -> float:
        """RSS growth from idle to every pathway open (the pilot's too), per pathway (all workers)."""
        if not self.open_runs or not self.open_mb:
            return float("nan")
        return 1024 * (sum(self.open_mb) - sum(self.idle_mb)) / self.open_runs


def with_deadline(definition: Definition, seconds: float) -> Definition:
    steps = [
        s.model_copy(update={"deadline": Delay(seconds=seconds)}) if isinstance(s, TaskStep) else s
        for s in definition.steps
    ]
    return definition.model_copy(update={"steps": steps})


class BurstStarter:
    """Starts (b)'s pathways as PathwayService does (update-with-start, same input and search
    attributes), but each with its own copy of the definition, whose deadline ends at the burst's
    instant: the run's clock starts when its first workflow task runs, a little after the call,
    so the offset seen on the previous starts (the task's due_at minus the instant) is taken off."""

    def __init__(self, client: Client, engine: Any, queue: str, actor: Actor, person_id: str, prefix: str) -> None:
        self.client, self.engine, self.queue, self.actor = client, engine, queue, actor
        self.person_id, self.prefix = person_id, prefix
        definition = q.latest_definition(engine, definition_id="bench_escalation")
        assert definition is not None
        self.definition = definition
        self.calendar = work_calendar(q.now().astimezone(PARIS).year, opens=DEFAULT_OPENS, closes=DEFAULT_CLOSES)
        self.offset = 0.0  # seconds the run's clock starts after the call, smoothed
        self.overran = 0

    async def start(self, i: int, due: float) -> None:
        used = self.offset
        seconds = due - time.time() - used
        overran = seconds < 1.0
        if overran:
            self.overran += 1
            seconds = 1.0
        pathway_id = f"{self.prefix}{i}"
        definition = with_deadline(self.definition, round(seconds, 3))
        operation = WithStartWorkflowOperation(
            PathwayWorkflow.run,
            PathwayInput(
                pathway_id=pathway_id,
                definition=definition,
                basin_id=BASIN,
                referent_org=REFERENT,
                person_ref=self.person_id,
                parties={},
                started_by=self.actor,
                calendar=self.calendar,
            ),
            id=pathway_id,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            task_queue=self.queue,
            search_attributes=sa.at_start(BASIN, definition.id, definition.version),
        )
        await self.client.execute_update_with_start_workflow(PathwayWorkflow.ready, start_workflow_operation=operation)
        tasks = q.list_tasks(self.engine, pathway_id=pathway_id, status="open")
        if tasks and tasks[0].due_at is not None and not overran:
            error = utc(tasks[0].due_at).timestamp() - due
            self.offset = 0.8 * self.offset + 0.2 * (used + error)


async def bench_burst(
    args: argparse.Namespace,
    children: Children,
    client: Client,
    service: PathwayService,
    database_url: str,
    smtp: CountingSink,
    common: dict[str, psutil.Process],
    workers: int,
    profiler: Profiler | None,
) -> Burst:
    engine = service.engine
    out = Burst(workers=workers)
    queue = f"bench-burst-{uuid.uuid4().hex[:6]}"
    names = [f"parcours-b{workers}-{n + 1}" for n in range(workers)]
    say(f"(b) {workers} fresh Parcours worker process(es) on {queue}")
    processes = [
        children.start_worker(
            name, kind="parcours", task_queue=queue, database_url=database_url, smtp_port=smtp_port_of(children)
        )
        for name in names
    ]
    samplers = [RssSampler(p) for p in processes]
    assert children.server is not None and children.server.process is not None
    server_rss = RssSampler(psutil.Process(children.server.process.pid))
    for sampler in [*samplers, server_rss]:
        sampler.start()
    await asyncio.sleep(1.5)  # idle samples first
    out.idle_mb = [s.last_mb for s in samplers]

    prefix = f"B{workers}-{uuid.uuid4().hex[:6]}-"
    seen: dict[str, tuple[str, datetime, float]] = {}  # escalation id -> task id, opened_at, wall seen
    poll_engine = make_engine(database_url)
    escalations = models.Escalation.__table__.c  # type: ignore[attr-defined]
    poll_columns = select(escalations.id, escalations.task_id, escalations.opened_at).where(
        escalations.pathway_id.startswith(prefix)
    )

    def poll_once() -> None:
        wall = time.time()  # rows visible now were committed before this snapshot
        with poll_engine.connect() as connection:
            for escalation_id, task_id, opened_at in connection.execute(poll_columns):
                if escalation_id not in seen:
                    seen[escalation_id] = (task_id, utc(opened_at), wall)

    stop_polling = asyncio.Event()

    async def poller() -> None:
        while not stop_polling.is_set():
            await asyncio.to_thread(poll_once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_polling.wait(), 0.2)

    poll_task = asyncio.create_task(poller())
    meters = common | {f"worker{n + 1}": p for n, p in enumerate(processes)}
    cpu = CpuMeter(meters)
    mails_before = smtp.count
    actor = service.actor_for(ACTOR_EMAIL)
    person_id = q.create_person(
        engine, data={"first_name": "Alex", "last_name": "Bench", "consent_at": q.now()}, created_by=actor.user_id
    )
    # A pilot, deadlines an hour away (open, not measured): these workers' start rate, from which
    # the instant is chosen so that every pathway of the burst is started before it.
    pilot = min(PILOT, args.timers)
    pilot_starter = BurstStarter(client, engine, queue, actor, person_id, f"pilot-{prefix}")
    pilot_due = time.time() + 3600
    pilot_s, _, errors = await drive(pilot, args.start_concurrency, lambda i: pilot_starter.start(i, pilot_due))
    report_errors("pilot start", errors)
    out.pilot = pilot - len(errors)
    rate = out.pilot / pilot_s if pilot_s else 1.0
    out.deadline_s = float(args.deadline) if args.deadline else math.ceil(args.timers / rate * 1.5 + 15)
    starter = BurstStarter(client, engine, queue, actor, person_id, prefix)
    due = time.time() + out.deadline_s
    say(
        f"(b) pilot: {out.pilot} pathways started at {rate:.1f}/s (left open, deadlines in an hour); starting "
        f"{args.timers} pathways, {args.start_concurrency} at once, every deadline at one instant "
        f"(+{out.deadline_s:.0f}s{', --deadline' if args.deadline else ''}), escalation {ESCALATE_AFTER:g}s after it …"
    )
    elapsed, _, errors = await drive(args.timers, args.start_concurrency, lambda i: starter.start(i, due))
    report_errors("start", errors)
    out.started, out.start_phase_s, out.overran = args.timers - len(errors), elapsed, starter.overran
    margin = due - time.time()
    say(
        f"    start phase {elapsed:.1f}s ({out.started / elapsed:.1f} starts/s); "
        + (f"{margin:.0f}s left before the deadline" if not out.overran else "")
        + (f"!! {out.overran} started too late for the instant (deadline 1 s)" if out.overran else "")
    )
    say(f"    {cpu.report()}")

    # Every pathway open, before the burst: the memory they hold.
    await asyncio.sleep(max(0.0, due - 1.5 - time.time()))
    out.open_mb = [s.last_mb for s in samplers]
    recording = None
    if profiler is not None and workers == 1:
        profiler.start("parcours-b", processes[0].pid, rate=BURST_PROFILE_RATE)
        recording = "parcours-b"
        out.profiled = True
    burst_cpu = CpuMeter(meters)

    give_up = due + ESCALATE_AFTER + args.grace
    last_report = 0.0
    while len(seen) < out.started and time.time() < give_up:
        await asyncio.sleep(0.5)
        if time.time() - last_report > 10:
            last_report = time.time()
            to_go = due + ESCALATE_AFTER - time.time()
            say(
                f"    … {len(seen)}/{out.started} escalations in the read model"
                + (f", due in {to_go:.0f}s" if to_go > 0 else "")
                + ", worker RSS "
                + " + ".join(f"{s.last_mb:.0f}" for s in samplers)
                + " MB"
            )
    stop_polling.set()
    await poll_task
    await asyncio.sleep(1.0)  # the e-mails of the last escalations
    say(f"    burst: {burst_cpu.report()}")
    out.worker_cpu = sum(burst_cpu.spent(f"worker{n + 1}") for n in range(workers))
    if recording is not None and profiler is not None:
        rec, wall, spy_cpu = profiler.stop(recording)
        say(f"    profile of the burst: py-spy used {spy_cpu:.1f}s CPU over {wall:.0f}s; raw stacks: {rec.path}")
        for line in summarise(rec.path, rate=rec.rate, per=out.started, per_label="pathway (overdue + escalation)"):
            say(line)
    for sampler in [*samplers, server_rss]:
        await sampler.stop()
    out.peak_mb = [s.peak_mb for s in samplers]
    out.server_peak_mb = server_rss.peak_mb
    out.mails = smtp.count - mails_before

    tasks = models.Task.__table__.c  # type: ignore[attr-defined]
    due_at: dict[str, datetime] = {}
    with poll_engine.connect() as connection:
        rows = connection.execute(
            select(tasks.id, tasks.due_at, tasks.escalation_level).where(tasks.pathway_id.startswith(prefix))
        ).all()
    poll_engine.dispose()
    for task_id, task_due, level in rows:
        if task_due is not None:
            due_at[task_id] = utc(task_due)
        out.escalated += 1 if (level or 0) >= 1 else 0
    if due_at:
        out.due_first, out.due_last = min(due_at.values()), max(due_at.values())
    for task_id, opened_at, wall in seen.values():
        if task_id not in due_at:
            continue
        scheduled = due_at[task_id] + timedelta(seconds=ESCALATE_AFTER)
        out.fired.append((opened_at - scheduled).total_seconds())
        out.visible.append(wall - scheduled.timestamp())
    say(
        f"    deadlines fall due within {out.due_spread:.2f}s of one another; escalated {out.escalated}/{out.started} "
        f"(tasks with an escalation level), {len(seen)} escalation rows seen; e-mails received {out.mails}"
    )
    if len(seen) < out.started:
        say(f"  !! {out.started - len(seen)} escalations never appeared within the grace period ({args.grace:.0f}s)")
    say(f"    lateness at firing (opened_at - due_at - 5s): {spread(out.fired)}")
    say(f"    lateness until visible (wall seen - due_at - 5s): {spread(out.visible)}")
    say(
        "    worker RSS: idle "
        + " + ".join(f"{m:.0f}" for m in out.idle_mb)
        + " MB, every pathway open "
        + " + ".join(f"{m:.0f}" for m in out.open_mb)
        + " MB, peak "
        + " + ".join(f"{m:.0f}" for m in out.peak_mb)
        + f" MB; dev server peak {out.server_peak_mb:.0f} MB; ≈ {out.kb_per_run:.0f} KB per cached run"
    )
    for name in names:
        children.stop_worker(name)
    return out


def smtp_port_of(children: Children) -> int:
    assert children.smtp is not None
    return int(children.smtp.port)


async def bench_open_rss(
    args: argparse.Namespace,
    children: Children,
    client: Client,
    service: PathwayService,
    database_url: str,
    extra_env: dict[str, str],
) -> tuple[float, float, float]:
    """A fresh worker's RSS idle, then with --timers pathways open (deadlines an hour away):
    (idle MB, open MB, KB per cached run). For the cut, whose burst is not run."""
    queue = f"bench-rss-{uuid.uuid4().hex[:6]}"
    process = children.start_worker(
        "parcours-rss",
        kind="parcours",
        task_queue=queue,
        database_url=database_url,
        smtp_port=smtp_port_of(children),
        extra_env=extra_env,
    )
    sampler = RssSampler(process)
    sampler.start()
    await asyncio.sleep(1.5)
    idle = sampler.last_mb
    actor = service.actor_for(ACTOR_EMAIL)
    person_id = q.create_person(
        service.engine,
        data={"first_name": "Alex", "last_name": "Bench", "consent_at": q.now()},
        created_by=actor.user_id,
    )
    starter = BurstStarter(client, service.engine, queue, actor, person_id, f"R-{uuid.uuid4().hex[:6]}-")
    due = time.time() + 3600
    elapsed, _, errors = await drive(args.timers, args.start_concurrency, lambda i: starter.start(i, due))
    report_errors("start", errors)
    await asyncio.sleep(2.0)
    opened = sampler.last_mb
    await sampler.stop()
    children.stop_worker("parcours-rss")
    started = args.timers - len(errors)
    per_run = 1024 * (opened - idle) / started if started else float("nan")
    say(
        f"    {started} pathways open in {elapsed:.1f}s: worker RSS idle {idle:.0f} MB, open {opened:.0f} MB, "
        f"≈ {per_run:.0f} KB per cached run"
    )
    return idle, opened, per_run


# --- (c) Cache misses ---------------------------------------------------------------------------


def passthrough_runner() -> SandboxedWorkflowRunner:
    """The sandbox of the cut (bench/_worker_process.py use_passthrough_runner)."""
    modules = (*DETERMINISTIC_MODULES, "workflows.pathway")
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules))


async def bench_replay(client: Client, pathway_ids: list[str], tmp: Path) -> dict[str, float]:
    """Replay time per history of finished (a) pathways: what a run evicted from the workflow
    cache costs at its next event. Measured with cached bytecode, then compiling the workflow
    module from source (as this dev environment does); keys: ms, ms_source, events, failures."""
    histories: list[WorkflowHistory] = []
    for pathway_id in pathway_ids:
        histories.append(await client.get_workflow_handle(pathway_id).fetch_history())
    out = {"ms": float("nan"), "ms_source": float("nan"), "ms_cut": float("nan"), "events": float("nan")}
    out["failures"] = 0.0
    if len(histories) < 2:
        return out

    async def each(items: list[WorkflowHistory]) -> Any:
        for item in items:
            yield item

    saved = sys.dont_write_bytecode, sys.pycache_prefix
    try:
        variants = (
            ("ms", "pycache", False, workflow_runner()),
            ("ms_source", "no-pycache-replay", True, workflow_runner()),
            ("ms_cut", "pycache", False, passthrough_runner()),
        )
        for key, prefix, no_write, runner in variants:
            sys.dont_write_bytecode, sys.pycache_prefix = no_write, str(tmp / prefix)
            replayer = Replayer(
                workflows=[PathwayWorkflow], workflow_runner=runner, data_converter=pydantic_data_converter
            )
            await replayer.replay_workflows(each(histories[:1]), raise_on_replay_failure=False)  # warm-up
            t = time.perf_counter()
            results = await replayer.replay_workflows(each(histories[1:]), raise_on_replay_failure=False)
            out[key] = 1000 * (time.perf_counter() - t) / len(histories[1:])
            out["failures"] += len(results.replay_failures)
    finally:
        sys.dont_write_bytecode, sys.pycache_prefix = saved
    out["events"] = statistics.mean(len(h.events) for h in histories[1:])
    return out


# --- The run ------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def engine_figure(name: str, value: str, note: str) -> figures.Figure:
    """A summary row as a figure: its goal and verdict when the note ends with one."""
    for ending, met in (("  NOT met", False), ("  met", True)):
        if note.endswith(ending):
            return figures.Figure("engine", name, value, note.removesuffix(ending), met)
    return figures.Figure("engine", name, f"{value} ({note.strip('()')})" if note else value)


def cache_sizing(one: Burst, replay: dict[str, float]) -> list[str]:
    """How to size max_cached_workflows for 100,000 running pathways, from this run's figures."""
    per_run_kb, base = one.kb_per_run, (one.idle_mb[0] if one.idle_mb else float("nan"))
    if math.isnan(per_run_kb) or per_run_kb <= 0:
        return ["  (no RSS growth measured: run (b) with more pathways)"]
    fits = int(max(0.0, GOAL_RSS_MB - base) * 1024 / per_run_kb)
    all_gb = 100_000 * per_run_kb / 2**20
    text = (
        f"A cached run costs ≈ {per_run_kb:.0f} KB of worker RSS here (idle worker {base:.0f} MB): caching all "
        f"100,000 running pathways would take ≈ {all_gb:.1f} GB in one worker ({all_gb / 2:.1f} GB in each of two). "
        f"Within {GOAL_RSS_MB:.0f} MB a worker caches ≈ {fits:,} runs: PARCOURS_WORKFLOW_CACHE_SIZE ≈ "
        f"({GOAL_RSS_MB:.0f} MB − {base:.0f} MB) / {per_run_kb:.0f} KB per worker process. A run not in the cache "
        f"is rebuilt at its next event by replaying its history: ≈ {replay['ms']:.0f} ms of CPU for a "
        f"{replay['events']:.0f}-event history ({replay['ms_source']:.0f} ms when the workflow module is compiled "
        "from source), more for longer histories (continue-as-new bounds them at 2,000 events). Pathways wait "
        "days between events, so the cache needs the runs active together (a morning's burst of deadlines, the "
        "pathways caseworkers are working on), not every running one: size it to the largest such set per "
        "worker that fits the memory budget, and add worker processes rather than cache beyond it."
    )
    return textwrap.wrap(text, width=108, initial_indent="  ", subsequent_indent="  ")


async def run(args: argparse.Namespace, children: Children) -> int:
    tmp = children.tmp
    say(
        f"Parcours engine benchmark — pathways={args.pathways}, timers={args.timers}, "
        f"concurrency={args.concurrency}, start concurrency={args.start_concurrency}; temp dir {tmp}"
    )
    load = os.getloadavg()
    say(
        f"machine: {psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    profiler = None
    if args.profile:
        profiler = children.profiler = Profiler(Path(args.profile))
        problem = profiler.check()
        if problem:
            say(f"!! --profile: {problem}; profiles skipped")
            profiler = children.profiler = None
        else:
            say(f"profiles (py-spy raw collapsed stacks) go to {Path(args.profile).resolve()}")

    sink = CountingSink()
    children.smtp = SmtpController(sink, hostname="127.0.0.1", port=free_port())
    children.smtp.start()

    t = time.perf_counter()
    children.server = DevServer(port=free_port(), db_file=tmp / "temporal.db", log_file=tmp / "temporal.log")
    client = await children.server.start()
    say(f"dev server up in {time.perf_counter() - t:.1f}s (SQLite {tmp / 'temporal.db'}, WAL)")
    assert children.server.process is not None

    database_url = f"sqlite:///{tmp / 'parcours.db'}"
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    for text in (FOUR_TASKS, ESCALATION):
        q.publish_definition(engine, definition=parse_text(text, source="bench"), source=text, published_by="bench")

    common: dict[str, psutil.Process] = {
        "dev-server": psutil.Process(children.server.process.pid),
        "driver+smtp": psutil.Process(os.getpid()),
    }

    # (a) ------------------------------------------------------------------------------------
    names = ["bare", "fair", "parcours", "parcours-src"] + (["parcours-cut"] if args.try_cut else [])
    queues = {name: f"bench-{name}-{uuid.uuid4().hex[:6]}" for name in names}
    kinds = {"bare": "baseline", "fair": "fair"}
    if (ROOT / "workflows" / "__pycache__").exists():
        say("!! workflows/__pycache__ exists: the 'compiled per run' worker will read its bytecode instead")
    workers = {
        name: children.start_worker(
            f"{name}-a",
            kind=kinds.get(name, "parcours"),
            task_queue=queue,
            database_url=database_url,
            smtp_port=smtp_port_of(children),
            bytecode=name != "parcours-src",
            extra_env=CUT_ENV if name == "parcours-cut" else None,
        )
        for name, queue in queues.items()
    }
    service = PathwayService(client, engine, task_queue=queues["parcours"])
    say("")
    say("(a) throughput, each on its own queue and worker process, all three workers with the Parcours worker's")
    say("    sandbox (worker.runner.workflow_runner), cache and concurrency. Bare = start_workflow + 4 updates running")
    say("    a no-op activity. Fair = person row, update-with-start, 4 × (read the task, update), each step one")
    say("    activity: one transaction (pathway, timeline, task, follow-up, audit, e-mail row) then the e-mail sent")
    say("    over SMTP and marked sent. Parcours = PathwayService.start_pathway + 4 × complete_task (commit as a local")
    say(
        "    activity, e-mails by the worker's outbox relay). Workers cache compiled modules (PYTHONPYCACHEPREFIX in the"
    )
    say("    temp dir), as an installed package has them; the last row runs Parcours as this dev environment does")
    say("    (PYTHONDONTWRITEBYTECODE=1, no __pycache__): the sandbox then compiles workflows/pathway.py for each run.")
    throughput = await bench_throughput(args, client, service, queues, workers, common, profiler)
    for name in queues:
        children.stop_worker(f"{name}-a")

    # (b) + (c) ------------------------------------------------------------------------------
    say("")
    one = await bench_burst(args, children, client, service, database_url, sink, common, 1, profiler)
    two = None
    if not args.one_worker_only:
        say("")
        two = await bench_burst(args, children, client, service, database_url, sink, common, 2, None)
    cut_rss = None
    if args.try_cut:
        say("")
        say(f"(c) the cut: a fresh worker with workflows.pathway passed through, {args.timers} pathways left open …")
        cut_rss = await bench_open_rss(args, children, client, service, database_url, CUT_ENV)
    say("")
    say("(c) cache misses: replaying finished (a) pathways' histories in this process …")
    replay = await bench_replay(client, throughput.parcours_ids[:21], tmp)
    replay_ms, replay_events = replay["ms"], replay["events"]
    say(
        f"    {replay_ms:.1f} ms per history of {replay_events:.0f} events with cached bytecode, "
        f"{replay['ms_source']:.1f} ms compiling the workflow module, {replay['ms_cut']:.1f} ms with the cut; "
        f"{replay['failures']:.0f} replay failures"
    )
    engine.dispose()

    # Summary --------------------------------------------------------------------------------
    a = throughput
    fair_ratio = a.parcours.rate / a.fair.rate if a.fair.rate else float("nan")
    local_ratio = a.parcours.rate / a.fair_local.rate if a.fair_local.rate else float("nan")
    bare_ratio = a.parcours.rate / a.bare.rate if a.bare.rate else float("nan")
    rows: list[tuple[str, str, str]] = []
    for c in (a.bare, a.fair, a.fair_local, a.parcours, a.parcours_src, *([a.parcours_cut] if a.parcours_cut else [])):
        rows.append(
            (
                f"(a) {c.label}",
                f"{c.rate:.1f} {c.unit}/s",
                f"CPU/pathway worker {c.worker_ms:.0f} ms, all {c.all_ms:.0f} ms",
            )
        )
    rows += [
        (
            "(a) Parcours / fair (activities)",
            f"{fair_ratio:.2f}x",
            f">= {GOAL_FAIR}x  {verdict(fair_ratio >= GOAL_FAIR)}",
        ),
        (
            "(a) Parcours / fair (local activities)",
            f"{local_ratio:.2f}x",
            f">= {GOAL_FAIR}x  {verdict(local_ratio >= GOAL_FAIR)}",
        ),
        ("(a) Parcours / bare", f"{bare_ratio:.2f}x", f">= {GOAL_BARE}x  {verdict(bare_ratio >= GOAL_BARE)}"),
    ]
    if a.parcours_cut is not None:
        cut = a.parcours_cut.rate
        rows += [
            (
                "(a) Parcours with the cut / fair (activities)",
                f"{cut / a.fair.rate:.2f}x",
                "(the cut, not in the code)",
            ),
            ("(a) Parcours with the cut / fair (local activities)", f"{cut / a.fair_local.rate:.2f}x", ""),
            ("(a) Parcours with the cut / bare", f"{cut / a.bare.rate:.2f}x", ""),
        ]
    for burst in (one, two):
        if burst is None:
            continue
        w = f"{burst.workers} worker{'s' if burst.workers > 1 else ''}" + (", profiled" if burst.profiled else "")
        visible_p99 = pct(burst.visible, 99)
        complete = burst.escalated == burst.started and len(burst.visible) == burst.started
        goal = f"p99 < {GOAL_BURST_P99:g} s, all  {verdict(visible_p99 < GOAL_BURST_P99 and complete)}"
        rows += [
            (
                f"(b) {w}: escalated / started",
                f"{burst.escalated}/{burst.started}",
                f"due within {burst.due_spread:.2f} s; {burst.mails} e-mails"
                + (f"; !! {burst.overran} started after the instant" if burst.overran else ""),
            ),
            (
                f"(b) {w}: lateness at firing p50/p95/p99/max",
                "/".join(f"{pct(burst.fired, p):.1f}" for p in (50, 95, 99))
                + f"/{max(burst.fired, default=float('nan')):.1f} s",
                "",
            ),
            (
                f"(b) {w}: lateness until visible p50/p95/p99/max",
                "/".join(f"{pct(burst.visible, p):.1f}" for p in (50, 95, 99))
                + f"/{max(burst.visible, default=float('nan')):.1f} s",
                goal if burst.workers == 1 else "(figure asked, no goal)",
            ),
            (
                f"(b) {w}: worker CPU for the burst",
                f"{burst.worker_cpu:.1f} s",
                f"{1000 * burst.worker_cpu / max(1, burst.started):.1f} ms per pathway (overdue + escalation)",
            ),
        ]
    peak = one.peak_mb[0] if one.peak_mb else float("nan")
    rows += [
        (
            f"(c) worker peak RSS, {one.started} open pathways",
            f"{peak:.0f} MB",
            f"< {GOAL_RSS_MB:.0f} MB  {verdict(peak < GOAL_RSS_MB)}",
        ),
        ("(c) RSS per cached run", f"{one.kb_per_run:.0f} KB", f"idle {one.idle_mb[0] if one.idle_mb else 0:.0f} MB"),
    ]
    if two is not None:
        rows.append(("(c) two workers' peak RSS", " + ".join(f"{m:.0f}" for m in two.peak_mb) + " MB", ""))
    if cut_rss is not None:
        rows.append(
            (
                f"(c) with the cut: RSS with {args.timers} open pathways",
                f"{cut_rss[1]:.0f} MB",
                f"{cut_rss[2]:.0f} KB per cached run, idle {cut_rss[0]:.0f} MB",
            )
        )
    rows.append(
        (
            "(c) replay of a finished pathway",
            f"{replay_ms:.1f} ms",
            f"{replay_events:.0f} events; {replay['ms_source']:.1f} ms compiling the module, {replay['ms_cut']:.1f} ms cut",
        )
    )
    figures.write(args.figures, [engine_figure(name, value, goal) for name, value, goal in rows])
    say("")
    say("=" * 120)
    say("SUMMARY")
    say("-" * 120)
    for name, value, goal in rows:
        say(f"{name:<62} {value:<24} {goal}")
    say("-" * 120)
    say("Sizing the workflow cache (max_cached_workflows) for 100,000 running pathways:")
    for line in cache_sizing(one, replay):
        say(line)
    say("=" * 120)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pathways", type=int, default=200, help="(a) pathways per contender (default 200)")
    parser.add_argument("--timers", type=int, default=2000, help="(b,c) pathways falling due at once (default 2000)")
    parser.add_argument("--concurrency", type=int, default=20, help="(a) pathways driven at once (default 20)")
    parser.add_argument("--start-concurrency", type=int, default=50, help="(b) starts at once (default 50)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=0,
        help="(b) seconds from the first start to the burst (default: from the pilot's start rate)",
    )
    parser.add_argument("--grace", type=float, default=120.0, help="(b) seconds to wait past the escalations' due time")
    parser.add_argument("--one-worker-only", action="store_true", help="(b) skip the two-worker burst")
    parser.add_argument(
        "--try-cut",
        action="store_true",
        help="also measure Parcours with workflows.pathway passed through the sandbox (throughput, RSS, replay)",
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy profiles of the Parcours worker during (a) and (b)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    parser.add_argument("--figures", type=Path, help="append the summary's figures to this file (bench/summary.py)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parcours-bench-"))
    children = Children(tmp=tmp)

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    code = 1
    try:
        code = asyncio.run(run(args, children))
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        children.stop_all()
        if args.keep or code not in (0, 130):
            say(f"logs and databases kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
