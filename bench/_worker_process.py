"""A benchmark worker in its own process (so its RSS can be sampled): the Parcours worker built
by worker.runner.build_worker, or (PARCOURS_BENCH_KIND=baseline) the bare baseline worker, or
(PARCOURS_BENCH_KIND=fair) the fair baseline's. All three run with the same options: the
Parcours worker's sandbox (worker.runner.workflow_runner), workflow cache and concurrency.

Settings come from the environment: PARCOURS_TEMPORAL_ADDRESS, PARCOURS_DATABASE_URL,
PARCOURS_TASK_QUEUE, PARCOURS_SMTP_HOST, PARCOURS_SMTP_PORT. PARCOURS_BENCH_READY_FILE, if set,
is created once the worker polls. SIGTERM/SIGINT shut it down; it ends with os._exit (the SDK's
Rust threads can abort CPython's finalisation, temporalio/sdk-python#300)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.worker import Worker  # noqa: E402

from parcours.settings import Settings  # noqa: E402
from services.temporal import connect  # noqa: E402


def use_passthrough_runner() -> None:
    """The cut bench/engine.py --try-cut measures: workflows.pathway passed through the sandbox
    (imported once per process, not once per run). Replaces worker.runner.workflow_runner, which
    build_worker calls, in this process only."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    import worker.runner

    def passthrough_runner() -> SandboxedWorkflowRunner:
        modules = (*worker.runner.DETERMINISTIC_MODULES, "workflows.pathway")
        return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules))

    worker.runner.workflow_runner = passthrough_runner


async def main() -> None:
    settings = Settings()
    kind = os.environ.get("PARCOURS_BENCH_KIND", "parcours")
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    engine = None
    fair = None
    if kind == "parcours":
        from store.db import make_engine
        from worker.runner import build_worker

        if os.environ.get("PARCOURS_BENCH_PASSTHROUGH_WORKFLOW") == "1":
            use_passthrough_runner()

        engine = make_engine(settings.resolved_database_url)
        worker: Worker = build_worker(client, engine=engine, settings=settings)
    else:
        from worker.runner import workflow_runner

        same: dict[str, Any] = {  # as worker.runner.build_worker builds the Parcours worker
            "max_concurrent_activities": 100,
            "max_concurrent_workflow_tasks": 100,
            "max_cached_workflows": settings.workflow_cache_size,
            "workflow_runner": workflow_runner(),
        }
        if kind == "baseline":
            from bench.baseline import BaselineWorkflow, baseline_step

            worker = Worker(
                client, task_queue=settings.task_queue, workflows=[BaselineWorkflow], activities=[baseline_step], **same
            )
        else:
            from bench.fair_activities import FairActivities
            from bench.fair_baseline import FairWorkflow
            from store.db import make_engine

            engine = make_engine(settings.resolved_database_url)
            fair = FairActivities(engine, settings)
            worker = Worker(
                client, task_queue=settings.task_queue, workflows=[FairWorkflow], activities=[fair.step], **same
            )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        ready = os.environ.get("PARCOURS_BENCH_READY_FILE")
        if ready:
            Path(ready).write_text(str(os.getpid()))
        print(f"{kind} worker polling {settings.task_queue}", flush=True)
        await stop.wait()
    if fair is not None:
        await fair.close()
    if engine is not None:
        engine.dispose()


if __name__ == "__main__":
    code = 0
    try:
        asyncio.run(main())
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
