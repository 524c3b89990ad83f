"""Engine benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/engine.py [--pathways N] [--timers N]

One run against an embedded Temporal dev server (DevServer, SQLite db file in a temp dir, as
`parcours dev`), the read model on a SQLite file, an aiosmtpd sink answering 250 OK:

(a) throughput: N pathways of a 4-task definition driven through PathwayService (start, then each
    task completed by complete_task), versus a bare baseline workflow (bench/baseline.py: start,
    then 4 updates each running one trivial activity), same driver shape, same concurrency, each
    on its own task queue with its own worker process.
(b) escalation lateness: --timers pathways whose single task has a deadline and one escalation
    level 5 s after it; lateness = Escalation.opened_at (workflow.now() at firing) and the
    wall-clock instant the row became visible (read model polled every 200 ms), each minus the
    scheduled instant (Task.due_at + 5 s).
(c) peak RSS of the worker process while those pathways are open (psutil every 0.5 s).
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
from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import select  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench.baseline import BaselineWorkflow  # noqa: E402
from definitions.loader import parse_text  # noqa: E402
from definitions.territory import DEMO_TERRITORY, load_territory  # noqa: E402
from services.pathways import PathwayService  # noqa: E402
from store import models  # noqa: E402
from store import queries as q  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.migrations import upgrade_to_head  # noqa: E402
from worker.temporal_server import DevServer, free_port  # noqa: E402

ACTOR_EMAIL = "camille.martin@example.org"  # caseworker of departement74, the referent below
BASIN, REFERENT = "annecien", "departement74"
PERSON = {"first_name": "Alex", "last_name": "Bench", "consent": True}
ESCALATE_AFTER = 5.0

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


def escalation_definition(deadline_s: int) -> str:
    return f"""
id: bench_escalation
title: Bench – escalade
status: active
basins: [all]
start: tache
escalation:
  - {{to: gto, after: PT{ESCALATE_AFTER:g}S}}
steps:
  - {{kind: task, id: tache, title: Tâche à échéance, role: referent, deadline: PT{deadline_s}S, outcomes: [{{id: fait, label: Fait, next: fin}}]}}
  - {{kind: end, id: fin, title: Fin, exit_reason: emploi_durable}}
"""


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
    smtp: Controller | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_worker(
        self, name: str, *, kind: str, task_queue: str, database_url: str, smtp_port: int
    ) -> subprocess.Popen[bytes]:
        assert self.server is not None
        ready = self.tmp / f"{name}.ready"
        env = {
            **os.environ,
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
        return process

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
        return times.user + times.system
    except psutil.Error:
        return 0.0


class CpuMeter:
    """CPU seconds each process used during a phase: shows where the time goes."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.start = {name: cpu_seconds(p) for name, p in processes.items()}
        self.t0 = time.monotonic()

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


@dataclass
class Throughput:
    baseline_rate: float = 0.0
    parcours_rate: float = 0.0
    parcours_start_latency: list[float] = field(default_factory=list)


async def bench_throughput(
    args: argparse.Namespace,
    client: Client,
    service: PathwayService,
    baseline_queue: str,
    meters: dict[str, psutil.Process],
) -> Throughput:
    engine = service.engine
    actor = service.actor_for(ACTOR_EMAIL)
    run_id = uuid.uuid4().hex[:6]
    out = Throughput()
    start_lat: list[float] = []
    complete_lat: list[float] = []
    update_lat: list[float] = []
    bstart_lat: list[float] = []

    async def baseline_one(i: int, tag: str = "m") -> None:
        t = time.perf_counter()
        handle = await client.start_workflow(
            BaselineWorkflow.run,
            4,
            id=f"baseline-{run_id}-{tag}{i}",
            task_queue=baseline_queue,
        )
        bstart_lat.append(time.perf_counter() - t)
        for n in range(4):
            t = time.perf_counter()
            await handle.execute_update(BaselineWorkflow.step, n)
            update_lat.append(time.perf_counter() - t)
        await handle.result()

    async def parcours_one(i: int) -> None:
        t = time.perf_counter()
        pathway_id = await service.start_pathway(
            definition_id="bench_four_tasks",
            basin_id=BASIN,
            referent_org=REFERENT,
            person=PERSON,
            actor=actor,
        )
        start_lat.append(time.perf_counter() - t)
        task_id = q.list_tasks(engine, pathway_id=pathway_id, status="open")[0].id
        for n in range(4):
            t = time.perf_counter()
            result = await service.complete_task(task_id=task_id, actor=actor, outcome="fait", data={})
            complete_lat.append(time.perf_counter() - t)
            if n < 3:
                task_id = result.opened[0]
        await client.get_workflow_handle(pathway_id).result()

    warm = min(5, args.pathways)
    say(f"(a) warm-up: {warm} of each, not counted")
    await drive(warm, args.concurrency, lambda i: baseline_one(i, "w"))
    await drive(warm, args.concurrency, parcours_one)
    start_lat.clear()
    complete_lat.clear()
    update_lat.clear()
    bstart_lat.clear()  # noqa: E702

    say(f"(a) baseline: {args.pathways} workflows, {args.concurrency} at once …")
    common = {k: v for k, v in meters.items() if not k.startswith("_")}
    cpu = CpuMeter(common | {"baseline-worker": meters["_baseline"]})
    elapsed, durations, errors = await drive(args.pathways, args.concurrency, baseline_one)
    report_errors("baseline", errors)
    out.baseline_rate = (args.pathways - len(errors)) / elapsed
    say(f"    {out.baseline_rate:.1f} workflows/s ({elapsed:.1f}s); per workflow {spread(durations)}")
    say(f"    start_workflow {spread(bstart_lat, 'ms', 1000)}")
    say(f"    update+activity {spread(update_lat, 'ms', 1000)}")
    say(f"    {cpu.report()}")

    say(f"(a) Parcours: {args.pathways} pathways, {args.concurrency} at once …")
    cpu = CpuMeter(common | {"parcours-worker": meters["_parcours_a"]})
    elapsed, durations, errors = await drive(args.pathways, args.concurrency, parcours_one)
    report_errors("Parcours", errors)
    out.parcours_rate = (args.pathways - len(errors)) / elapsed
    out.parcours_start_latency = list(start_lat)
    say(f"    {out.parcours_rate:.1f} pathways/s ({elapsed:.1f}s); per pathway {spread(durations)}")
    say(f"    start_pathway {spread(start_lat, 'ms', 1000)}")
    say(f"    complete_task {spread(complete_lat, 'ms', 1000)}")
    say(f"    {cpu.report()}")
    return out


@dataclass
class Lateness:
    deadline_s: int = 0
    started: int = 0
    start_phase_s: float = 0.0
    fired: list[float] = field(default_factory=list)
    visible: list[float] = field(default_factory=list)
    missing: int = 0
    rss: RssSampler | None = None
    server_rss: RssSampler | None = None


async def bench_escalations(
    args: argparse.Namespace,
    children: Children,
    service: PathwayService,
    database_url: str,
    smtp: CountingSink,
    deadline_s: int,
    meters: dict[str, psutil.Process],
) -> Lateness:
    engine = service.engine
    actor = service.actor_for(ACTOR_EMAIL)
    out = Lateness(deadline_s=deadline_s)
    definition = parse_text(escalation_definition(deadline_s), source="bench")
    q.publish_definition(engine, definition=definition, source=escalation_definition(deadline_s), published_by="bench")

    say(f"(b,c) starting a fresh Parcours worker process for {args.timers} timed pathways")
    queue = f"bench-esc-{uuid.uuid4().hex[:6]}"
    worker = children.start_worker(
        "parcours-b",
        kind="parcours",
        task_queue=queue,
        database_url=database_url,
        smtp_port=smtp_port_of(children),
    )
    worker_ps = psutil.Process(worker.pid)
    service = PathwayService(service.client, engine, task_queue=queue)
    out.rss = RssSampler(worker_ps)
    out.rss.start()
    assert children.server is not None and children.server.process is not None
    out.server_rss = RssSampler(psutil.Process(children.server.process.pid))
    out.server_rss.start()
    await asyncio.sleep(1.0)  # an idle sample first

    seen: dict[str, tuple[str, datetime, float]] = {}  # escalation id -> task id, opened_at, wall seen
    poll_engine = make_engine(database_url)
    poll_columns = select(models.Escalation.id, models.Escalation.task_id, models.Escalation.opened_at)

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
    cpu = CpuMeter(meters | {"parcours-worker": worker_ps})
    mails_before = smtp.count

    async def start_one(i: int) -> None:
        if args.start_rate:  # paced starts: deadlines (and so escalations) arrive at this rate
            await asyncio.sleep(max(0.0, first_start + i / args.start_rate - time.time()))
        await service.start_pathway(
            definition_id="bench_escalation",
            basin_id=BASIN,
            referent_org=REFERENT,
            person=PERSON,
            actor=actor,
        )

    pace = f"paced at {args.start_rate:g}/s" if args.start_rate else "as fast as they go"
    say(
        f"(b) starting {args.timers} pathways, {args.start_concurrency} at once, {pace}, deadline PT{deadline_s}S, "
        f"escalation {ESCALATE_AFTER:g}s after it …"
    )
    first_start = time.time()
    elapsed, _, errors = await drive(args.timers, args.start_concurrency, start_one)
    report_errors("start", errors)
    out.started = args.timers - len(errors)
    out.start_phase_s = elapsed
    margin = deadline_s - elapsed
    say(
        f"    start phase {elapsed:.1f}s ({out.started / elapsed:.1f} starts/s); first deadline was at +{deadline_s}s: "
        + ("all started before it" if margin > 0 else f"!! start phase overran the first deadline by {-margin:.1f}s")
    )
    say(f"    {cpu.report()}")

    # Wait for every escalation (or give up a while after the last one was due).
    give_up = time.time() + deadline_s + ESCALATE_AFTER + args.grace
    last_report = 0.0
    while len(seen) < out.started and time.time() < give_up:
        await asyncio.sleep(0.5)
        if time.time() - last_report > 10:
            last_report = time.time()
            due_in = first_start + deadline_s + ESCALATE_AFTER - time.time()
            say(
                f"    … {len(seen)}/{out.started} escalations in the read model"
                + (f", first due in {due_in:.0f}s" if due_in > 0 else "")
                + f", worker RSS {out.rss.last_mb:.0f} MB"
            )
    await asyncio.sleep(1.0)
    stop_polling.set()
    await poll_task
    await out.rss.stop()
    await out.server_rss.stop()
    say(f"    {cpu.report()}")
    say(f"    e-mails received by the sink during (b): {smtp.count - mails_before}")

    task_ids = sorted({task_id for task_id, _, _ in seen.values()})
    due: dict[str, datetime] = {}
    with poll_engine.connect() as connection:
        for chunk in range(0, len(task_ids), 500):
            rows = connection.execute(
                select(models.Task.id, models.Task.due_at).where(models.Task.id.in_(task_ids[chunk : chunk + 500]))
            )
            due.update({task_id: utc(due_at) for task_id, due_at in rows if due_at is not None})
    poll_engine.dispose()
    for task_id, opened_at, wall in seen.values():
        if task_id not in due:
            continue
        scheduled = due[task_id] + timedelta(seconds=ESCALATE_AFTER)
        out.fired.append((opened_at - scheduled).total_seconds())
        out.visible.append(wall - scheduled.timestamp())
    out.missing = out.started - len(seen)
    if out.missing:
        say(f"  !! {out.missing} escalations never appeared within the grace period ({args.grace:.0f}s)")
    say(f"    lateness at firing (opened_at - due_at - 5s): {spread(out.fired)}")
    say(f"    lateness until visible (wall seen - due_at - 5s): {spread(out.visible)}")
    say(
        f"    worker RSS: idle {out.rss.first_mb:.0f} MB, peak {out.rss.peak_mb:.0f} MB, end {out.rss.last_mb:.0f} MB; "
        f"dev server peak {out.server_rss.peak_mb:.0f} MB"
    )
    return out


def smtp_port_of(children: Children) -> int:
    assert children.smtp is not None
    return int(children.smtp.port)


def choose_deadline(args: argparse.Namespace, throughput: Throughput) -> int:
    """One deadline for every pathway of (b): long enough that all are started before the first
    one falls due. A start costs about one of the five round trips of an (a) pathway, but (b)
    starts 50 at once: estimate the start rate from (a) conservatively, add a margin."""
    if args.deadline:
        return int(args.deadline)
    if args.start_rate:
        return int(math.ceil(args.timers / args.start_rate + 20))
    latencies = throughput.parcours_start_latency
    # starts/s at (a)'s concurrency, under mixed load
    rate = args.concurrency / statistics.mean(latencies) if latencies else 10.0
    estimate = args.timers / rate
    return max(20, int(math.ceil(estimate * 2 + 15)))


async def run(args: argparse.Namespace, children: Children) -> int:
    tmp = children.tmp
    say(
        f"Parcours engine benchmark — pathways={args.pathways}, timers={args.timers}, "
        f"concurrency={args.concurrency}, start concurrency={args.start_concurrency}; temp dir {tmp}"
    )
    say(f"machine: {psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}")

    sink = CountingSink()
    children.smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
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
    q.publish_definition(
        engine, definition=parse_text(FOUR_TASKS, source="bench"), source=FOUR_TASKS, published_by="bench"
    )

    meters: dict[str, psutil.Process] = {
        "dev-server": psutil.Process(children.server.process.pid),
        "driver+smtp": psutil.Process(os.getpid()),
    }

    # (a) ------------------------------------------------------------------------------------
    queues = {"baseline-a": f"bench-baseline-{uuid.uuid4().hex[:6]}", "parcours-a": f"bench-a-{uuid.uuid4().hex[:6]}"}
    baseline_worker = children.start_worker(
        "baseline-a",
        kind="baseline",
        task_queue=queues["baseline-a"],
        database_url=database_url,
        smtp_port=smtp_port_of(children),
    )
    parcours_worker = children.start_worker(
        "parcours-a",
        kind="parcours",
        task_queue=queues["parcours-a"],
        database_url=database_url,
        smtp_port=smtp_port_of(children),
    )
    meters_a = meters | {
        "_baseline": psutil.Process(baseline_worker.pid),
        "_parcours_a": psutil.Process(parcours_worker.pid),
    }
    service = PathwayService(client, engine, task_queue=queues["parcours-a"])
    say("")
    say("(a) throughput. Baseline = bare Temporal workflow (bench/baseline.py): start_workflow, then 4 updates")
    say("    from the driver, each update handler running 1 trivial activity, then await the result.")
    say("    Parcours = PathwayService.start_pathway (read-model checks, person row, start + 'ready' update")
    say("    + projection) then 4 × complete_task (read-model checks, submission row, update + projection;")
    say("    + 'task assigned' e-mail per task), then await the result. Each on its own queue and worker process.")
    throughput = await bench_throughput(args, client, service, queues["baseline-a"], meters_a)
    children.stop_worker("baseline-a")
    children.stop_worker("parcours-a")

    # (b) + (c) ------------------------------------------------------------------------------
    say("")
    deadline_s = choose_deadline(args, throughput)
    say(f"(b) deadline chosen: PT{deadline_s}S (from (a)'s start latency; override with --deadline)")
    lateness = await bench_escalations(args, children, service, database_url, sink, deadline_s, meters)
    engine.dispose()

    # Summary --------------------------------------------------------------------------------
    ratio = throughput.parcours_rate / throughput.baseline_rate if throughput.baseline_rate else float("nan")
    rss = lateness.rss.peak_mb if lateness.rss else float("nan")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    rows = [
        ("(a) baseline throughput", f"{throughput.baseline_rate:.1f} workflows/s", ""),
        ("(a) Parcours throughput", f"{throughput.parcours_rate:.1f} pathways/s", ""),
        ("(a) ratio Parcours / baseline", f"{ratio:.2f}x", f">= 0.8x  {verdict(ratio >= 0.8)}"),
        (
            f"(b) escalations ({lateness.started} pathways, PT{lateness.deadline_s}S + 5 s)",
            f"{len(lateness.fired)} seen, {lateness.missing} missing",
            "",
        ),
        (
            "(b) lateness at firing p50/p95/p99/max",
            "/".join(f"{pct(lateness.fired, p):.2f}" for p in (50, 95, 99))
            + f"/{max(lateness.fired, default=float('nan')):.2f} s",
            f"p99 < 2 s  {verdict(pct(lateness.fired, 99) < 2 and not lateness.missing)}",
        ),
        (
            "(b) lateness until visible p50/p95/p99/max",
            "/".join(f"{pct(lateness.visible, p):.2f}" for p in (50, 95, 99))
            + f"/{max(lateness.visible, default=float('nan')):.2f} s",
            f"p99 < 2 s  {verdict(pct(lateness.visible, 99) < 2 and not lateness.missing)}",
        ),
        (f"(c) worker peak RSS ({lateness.started} open pathways)", f"{rss:.0f} MB", f"< 500 MB  {verdict(rss < 500)}"),
    ]
    say("")
    say("=" * 100)
    say("SUMMARY")
    say("-" * 100)
    for name, value, goal in rows:
        say(f"{name:<52} {value:<28} {goal}")
    say("=" * 100)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pathways", type=int, default=200, help="(a) pathways and baseline workflows (default 200)")
    parser.add_argument("--timers", type=int, default=2000, help="(b,c) timed pathways (default 2000)")
    parser.add_argument("--concurrency", type=int, default=20, help="(a) pathways driven at once (default 20)")
    parser.add_argument("--start-concurrency", type=int, default=50, help="(b) starts at once (default 50)")
    parser.add_argument(
        "--deadline", type=int, default=0, help="(b) task deadline in seconds (default: chosen from (a))"
    )
    parser.add_argument("--grace", type=float, default=120.0, help="(b) seconds to wait past the last due escalation")
    parser.add_argument(
        "--start-rate",
        type=float,
        default=0.0,
        help="(b) pace starts at this many per second, so escalations then fire at that rate (default: unpaced burst)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
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
