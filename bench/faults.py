"""The fault suite on the production topology: prints figures, asserts nothing.

    .venv/bin/python bench/faults.py [--pathways 200] [--outage 60] [--smtp-outage 300] [--kills 10] …
    make faults

It starts the production topology without Docker (tests/topology.py: the read model on a private
PostgreSQL cluster, the Temporal dev server on its file, an SMTP sink, two `parcours worker`, one
`parcours ui` with three uvicorn processes), puts pathways in flight through the HTTP API, then
injects each fault in turn while API clients act and timers fire:

(a) the read model's PostgreSQL stopped (`pg_ctl stop -m fast`) for `--outage` seconds, the
    budgets as in production (30 s of local writes, answers within 10 s, durable retries 5 s to
    10 min); then a scaled-time variant: pathways whose budgets are divided by `--scale`, so that
    an outage of `--scaled-hours` × 3600 / scale seconds stands for that many hours, measuring
    the history events a pathway gains per hour of outage and extrapolating to 72 hours;
(b) the SMTP server stopped for `--smtp-outage` seconds;
(c) one worker killed with kill -9 `--kills` times, at random points, restarted each time;
(d) the Temporal dev server killed (kill -9) and restarted on its file after `--temporal-down` s;
(e) the UI (all its uvicorn processes) killed mid-request while the client retries with the same
    request id (Idempotency-Key), `--ui-trials` times: a start and a completion cut while Temporal
    has no worker to answer, then cuts at random points.

For each fault it prints: pathways lost, e-mails sent twice for one key, pathways terminated,
history events a pathway gains from the fault, time to catch up once the fault ends, and what a
user saw (status codes and messages, with counts). tests/test_faults.py runs the same scenarios
with fewer pathways and shorter faults, and asserts the outcomes.

The definitions in flight: `faults_timed`, one task in a loop (each completion opens the next
one) with a reminder, a deadline and an escalation a few seconds apart, so timers fire during
every fault; `faults_quiet`, the same loop without timers, whose history shows what a fault
alone adds. Every pathway is acted on by one API client at a time; each action carries its own
Idempotency-Key and is sent again, with the same key, after a 5xx or a cut connection, until it
gets an answer (a user retrying).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import random
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowExecutionStatus, WorkflowQueryFailedError  # noqa: E402
from temporalio.service import RPCError, RPCStatusCode  # noqa: E402

from activities.outbox import LEASE_SECONDS  # noqa: E402
from services.pathways import PathwayService  # noqa: E402
from store import models  # noqa: E402
from tests.topology import ApiUser, Topology, until  # noqa: E402
from workflows import search_attributes as sa  # noqa: E402
from workflows.contract import Actor  # noqa: E402
from workflows.model import CompleteTask, PathwayState, UpdateResult  # noqa: E402
from workflows.pathway import PathwayWorkflow  # noqa: E402

CAMILLE = "camille.martin@example.org"  # caseworker, Département (referent, basin annecien)
DESIGNER = "marc.girard@example.org"
TIMED, QUIET = "faults_timed", "faults_quiet"
TIMER_ACTIONS = ("reminder_sent", "task_overdue", "escalated")
RETRIED = frozenset({500, 502, 503, 504})
"""Answers a client sends the same request again after (a 500 is counted as an anomaly too)."""
ENDED = (
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.CANCELED,
)

RPC_TIMEOUT = timedelta(seconds=10)
"""For the suite's own queries and descriptions: a wedged run must not hang the measurement."""

# Production budgets (parcours/settings.py) and the test suite's, scaled down.
PRODUCTION_BUDGETS = {"local": 30.0, "answer": 10.0, "retry_first": 5.0, "retry_max": 600.0}


def budget_env(scale: float) -> dict[str, str]:
    """PARCOURS_COMMIT_* settings of the UI (they go into each pathway it starts), divided by `scale`."""
    return {
        "PARCOURS_COMMIT_LOCAL_SECONDS": str(PRODUCTION_BUDGETS["local"] / scale),
        "PARCOURS_ANSWER_WITHIN_SECONDS": str(PRODUCTION_BUDGETS["answer"] / scale),
        "PARCOURS_COMMIT_RETRY_FIRST_SECONDS": str(PRODUCTION_BUDGETS["retry_first"] / scale),
        "PARCOURS_COMMIT_RETRY_MAX_SECONDS": str(PRODUCTION_BUDGETS["retry_max"] / scale),
    }


def timed_definition(due: int = 30, before: int = 15, escalate_after: int = 15) -> str:
    """One task in a loop: a reminder `before` s before its deadline (`due` s), an escalation to
    the GTO `escalate_after` s past it; each has its e-mail."""
    return f"""
id: {TIMED}
title: Suite de pannes (minutée)
status: active
basins: [all]
start: point
escalation:
  - {{to: gto, after: PT{escalate_after}S}}
steps:
  - kind: task
    id: point
    title: Point d'étape
    role: referent
    deadline: PT{due}S
    reminders: [{{before: PT{before}S}}]
    outcomes:
      - {{id: encore, label: Encore un point, next: point}}
      - {{id: fini, label: Terminé, next: fin}}
  - {{kind: end, id: fin, title: Fin, exit_reason: formation}}
"""


QUIET_DEFINITION = f"""
id: {QUIET}
title: Suite de pannes (sans minuterie)
status: active
basins: [all]
start: point
steps:
  - kind: task
    id: point
    title: Point d'étape
    role: referent
    outcomes:
      - {{id: encore, label: Encore un point, next: point}}
      - {{id: fini, label: Terminé, next: fin}}
  - {{kind: end, id: fin, title: Fin, exit_reason: formation}}
"""


def say(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- What users saw ---------------------------------------------------------------------------


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:120]
    if isinstance(body, dict):
        for name in ("detail", "message"):
            if isinstance(body.get(name), str):
                return str(body[name])
        if "pathway_id" in body:
            return "parcours démarré"
        if "pathway" in body:
            return "parcours lu (tâches, échéances)"
    return str(body)[:120]


def _transport(error: BaseException) -> str:
    if isinstance(error, httpx.ConnectError):
        return "connexion refusée (le serveur ne répond pas)"
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
        return "connexion coupée sans réponse"
    if isinstance(error, httpx.TimeoutException):
        return "pas de réponse avant le délai du client"
    return type(error).__name__


@dataclass
class Seen:
    """What users saw: each answer (status code, French message) or cut connection, counted."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    waits: dict[tuple[str, str], float] = field(default_factory=dict)  # the longest wait for each

    def response(self, response: httpx.Response, waited: float | None = None) -> None:
        self.note(str(response.status_code), _detail(response), waited)

    def error(self, error: BaseException, waited: float | None = None) -> None:
        self.note("—", _transport(error), waited)

    def note(self, status: str, message: str, waited: float | None = None) -> None:
        self.counts[(status, message)] += 1
        if waited is not None:
            self.waits[(status, message)] = max(waited, self.waits.get((status, message), 0.0))

    def statuses(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (status, _), count in self.counts.items():
            totals[status] += count
        return totals

    def lines(self, width: int = 110) -> list[str]:
        out = []
        for (status, message), count in sorted(self.counts.items(), key=lambda kv: (kv[0][0], -kv[1])):
            text = message if len(message) <= width else message[: width - 1] + "…"
            waited = self.waits.get((status, message))
            out.append(f"{status} ×{count} « {text} »" + (f" (≤ {waited:.1f} s)" if waited is not None else ""))
        return out

    def summary(self) -> str:
        return "; ".join(self.lines())


# --- The pathways in flight -------------------------------------------------------------------


@dataclass
class Track:
    """One pathway and what its client knows: the open task, the actions answered 200."""

    pathway_id: str
    definition: str
    task_id: str | None = None
    completed: int = 0
    anomalies: list[str] = field(default_factory=list)


class GaveUp(Exception):
    """A request still without an answer after the client's patience ran out."""


class Fleet:
    """Pathways in flight and the API clients acting on them."""

    def __init__(
        self,
        topology: Topology,
        user: ApiUser,
        *,
        give_up: float = 600.0,
        retry_pause: float = 0.5,
        strict: bool = True,
        patience: float | None = None,
    ) -> None:
        self.topology = topology
        self.patience = patience or give_up  # how long a catch-up is waited for
        self.strict = strict  # tests: a catch-up past its patience fails; the bench reports and goes on
        self.user = user
        self.tracks: dict[str, Track] = {}
        self.give_up = give_up
        self.retry_pause = retry_pause
        self.seen = Seen()
        self.actions = 0
        self.drivers: list[Driver] = []
        self.arrivals: list[tuple[float, str]] = []  # (time.monotonic(), e-mail key) at the SMTP sink
        self.wedged: set[str] = set()  # pathways found wedged: reported once, then left out
        self._actor: Actor | None = None

    @classmethod
    async def open(cls, topology: Topology, **options: Any) -> Fleet:
        fleet = cls(topology, await topology.api(CAMILLE, timeout=60.0), **options)
        earlier = topology.smtp.on_message

        def arrived(message: Any) -> None:  # on the SMTP sink's thread
            fleet.arrivals.append((time.monotonic(), str(message["X-Parcours-Key"])))
            if earlier is not None:
                earlier(message)

        topology.smtp.on_message = arrived
        return fleet

    async def aclose(self) -> None:
        await self.user.aclose()

    def live(self, tracks: Iterable[Track] | None = None) -> list[Track]:
        """The tracks not found wedged."""
        return [t for t in (tracks if tracks is not None else self.tracks.values()) if t.pathway_id not in self.wedged]

    def live_ids(self) -> list[str]:
        return [t.pathway_id for t in self.live()]

    async def caught_up(self, ended: float, pathway_ids: Sequence[str] | None = None) -> CatchUp:
        """`catch_up` of the live pathways (or these), waited for as long as this fleet's patience."""
        ids = self.live_ids() if pathway_ids is None else pathway_ids
        return await catch_up(self.topology, ids, ended, timeout=self.patience, strict=self.strict)

    def of(self, definition: str) -> list[Track]:
        return [t for t in self.tracks.values() if t.definition == definition]

    # -- Requests, retried with the same key until answered --

    async def send(self, request: Callable[[], Awaitable[httpx.Response]], seen: Seen | None = None) -> httpx.Response:
        """Send until an answer that is not a 5xx: a user pressing the button again (same key)."""
        seen = seen or self.seen
        deadline = time.monotonic() + self.give_up
        while True:
            sent = time.monotonic()
            try:
                response = await request()
            except httpx.TransportError as error:
                seen.error(error, time.monotonic() - sent)
            else:
                seen.response(response, time.monotonic() - sent)
                if response.status_code not in RETRIED:
                    return response
            if time.monotonic() > deadline:
                raise GaveUp(f"no answer after {self.give_up:.0f}s")
            await asyncio.sleep(self.retry_pause)  # a user waits a moment before retrying

    async def start(self, count: int, definition: str, *, concurrency: int = 8) -> list[Track]:
        """Start `count` pathways through the API, each with its own Idempotency-Key."""
        gate = asyncio.Semaphore(concurrency)
        started: list[Track] = []

        async def one() -> None:
            key = str(uuid.uuid4())
            async with gate:
                response = await self.send(lambda: self.user.start_pathway(definition, request_id=key), Seen())
            if response.status_code != 201:
                raise RuntimeError(f"start refused: {response.status_code} {response.text}")
            track = Track(pathway_id=response.json()["pathway_id"], definition=definition)
            self.tracks[track.pathway_id] = track
            started.append(track)

        await asyncio.gather(*(one() for _ in range(count)))
        return started

    async def act(self, track: Track, seen: Seen | None = None) -> httpx.Response | None:
        """Complete the pathway's open task ("encore": the next one opens), retrying the same request."""
        seen = seen or self.seen
        if track.task_id is None:
            read = await self.send(lambda: self.user.pathway(track.pathway_id), seen)
            if read.status_code != 200:
                track.anomalies.append(f"lecture {read.status_code}: {_detail(read)}")
                return None
            open_tasks = [t["id"] for t in read.json()["tasks"] if t["status"] == "open"]
            if len(open_tasks) != 1:
                track.anomalies.append(f"{len(open_tasks)} tâches ouvertes")
                return None
            track.task_id = open_tasks[0]
        task_id, key = track.task_id, str(uuid.uuid4())
        response = await self.send(lambda: self.user.complete_task(task_id, "encore", request_id=key), seen)
        self.actions += 1
        if response.status_code == 200:
            track.completed += 1
            opened = response.json()["opened"]
            track.task_id = opened[0] if len(opened) == 1 else None
        else:
            track.anomalies.append(f"action {response.status_code}: {_detail(response)}")
            track.task_id = None
        return response

    async def actor(self) -> Actor:
        if self._actor is None:
            service = PathwayService(self.topology.client, self.topology.engine, task_queue=self.topology.task_queue)  # type: ignore[arg-type]
            self._actor = await asyncio.to_thread(service.actor_for, CAMILLE)
        return self._actor

    async def act_in_temporal(self, track: Track) -> UpdateResult:
        """The same action as a Temporal update: one the service had checked just before the read
        model went away (a request in flight), or a CLI's. Reads the open task from the run."""
        actor = await self.actor()
        handle = self.topology.client.get_workflow_handle(track.pathway_id)  # type: ignore[union-attr]
        state: PathwayState = await handle.query(PathwayWorkflow.state_view, rpc_timeout=RPC_TIMEOUT)
        task = next(i for i in state.items.values() if i.kind == "task" and i.status == "open")
        result: UpdateResult = await handle.execute_update(
            PathwayWorkflow.complete_task,
            CompleteTask(item_id=task.id, actor=actor, outcome="encore"),
            id=f"faults-{uuid.uuid4()}",
        )
        track.completed += 1
        track.task_id = result.opened[0] if len(result.opened) == 1 else None
        self.actions += 1
        return result


class Driver:
    """`clients` API users acting on the tracks, one track per client at a time, until stopped;
    a stopped client finishes its action first (retrying until answered)."""

    def __init__(self, fleet: Fleet, tracks: Sequence[Track], *, clients: int = 8, think: float = 0.2) -> None:
        self.fleet, self.queue = fleet, fleet.live(tracks)
        random.shuffle(self.queue)
        self.clients, self.think = clients, think
        self.stopping = asyncio.Event()
        self.done = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.errors: list[BaseException] = []
        fleet.drivers.append(self)

    async def _client(self) -> None:
        while not self.stopping.is_set():
            if not self.queue:
                await asyncio.sleep(self.think)
                continue
            track = self.queue.pop(0)
            try:
                await self.fleet.act(track)
                self.done += 1
            except Exception as error:  # GaveUp, or a bug in the driver: reported, never hidden
                self.errors.append(error)
                track.anomalies.append(f"client: {error!r}")
            finally:
                self.queue.append(track)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.think)  # a user thinks

    def start(self) -> Driver:
        self.tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]
        return self

    async def warm(self, actions: int, timeout: float = 300) -> None:
        await until(lambda: self.done >= actions, timeout=timeout, what=f"{actions} actions before the fault")

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks)

    def cancel(self) -> None:
        """The fault failed: stop at once, without finishing the actions in hand."""
        self.stopping.set()
        for task in self.tasks:
            task.cancel()


# --- The state of every pathway, from Temporal and from the read model ------------------------


def _chunks(items: Sequence[str], size: int = 200) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class ReadModelView:
    revision: dict[str, int]
    status: dict[str, str]
    open_tasks: dict[str, dict[str, int]]  # pathway -> task id -> escalation level
    done: dict[str, int]  # pathway -> tasks done with "encore"


def read_model_view(topology: Topology, pathway_ids: Sequence[str]) -> ReadModelView:
    view = ReadModelView({}, {}, {}, {})
    with topology.engine.connect() as connection:
        for chunk in _chunks(pathway_ids):
            pathway, task = models.Pathway.__table__.c, models.Task.__table__.c  # type: ignore[attr-defined]
            for row in connection.execute(
                select(pathway.id, pathway.revision, pathway.status).where(pathway.id.in_(chunk))
            ):
                view.revision[row.id], view.status[row.id] = row.revision, row.status
            for row in connection.execute(
                select(task.pathway_id, task.id, task.escalation_level).where(
                    task.pathway_id.in_(chunk), task.status == "open"
                )
            ):
                view.open_tasks.setdefault(row.pathway_id, {})[row.id] = row.escalation_level
            for row in connection.execute(
                select(task.pathway_id, func.count())
                .where(task.pathway_id.in_(chunk), task.status == "done", task.outcome == "encore")
                .group_by(task.pathway_id)
            ):
                view.done[row[0]] = row[1]
    return view


async def run_states(
    topology: Topology, pathway_ids: Sequence[str], concurrency: int = 16, *, failed: dict[str, str] | None = None
) -> dict[str, PathwayState]:
    """Each run's own state (a query to a worker). A query the run itself fails (its code raises
    on replay) is noted in `failed`; a timeout or an unreachable server is just asked again later."""
    gate = asyncio.Semaphore(concurrency)
    states: dict[str, PathwayState] = {}

    async def one(pathway_id: str) -> None:
        async with gate:
            handle = topology.client.get_workflow_handle(pathway_id)  # type: ignore[union-attr]
            try:
                states[pathway_id] = await handle.query(PathwayWorkflow.state_view, rpc_timeout=RPC_TIMEOUT)
            except WorkflowQueryFailedError as error:
                if failed is not None:
                    failed[pathway_id] = str(error)
            except Exception:  # noqa: BLE001  (a run being replayed elsewhere, Temporal restarting)
                pass

    await asyncio.gather(*(one(p) for p in pathway_ids))
    return states


def in_step(state: PathwayState, view: ReadModelView, pathway_id: str) -> bool:
    """The read model shows what the run holds: same revision, same open tasks and levels."""
    run_open = {i.id: i.escalation_level for i in state.items.values() if i.kind == "task" and i.status == "open"}
    return view.revision.get(pathway_id) == state.revision and view.open_tasks.get(pathway_id, {}) == run_open


async def descriptions(topology: Topology, pathway_ids: Sequence[str], concurrency: int = 16) -> dict[str, Any]:
    """describe() of each run (None: Temporal does not know it)."""
    gate = asyncio.Semaphore(concurrency)
    described: dict[str, Any] = {}

    async def one(pathway_id: str) -> None:
        async with gate:
            handle = topology.client.get_workflow_handle(pathway_id)  # type: ignore[union-attr]
            for attempt in range(3):
                try:
                    described[pathway_id] = await handle.describe(rpc_timeout=RPC_TIMEOUT)
                    return
                except RPCError as error:
                    if error.status == RPCStatusCode.NOT_FOUND:
                        described[pathway_id] = None
                        return
                    if attempt == 2:
                        raise
                except RPCTimeoutOrCancelledError:
                    if attempt == 2:
                        raise
                await asyncio.sleep(1)

    await asyncio.gather(*(one(p) for p in pathway_ids))
    return described


async def history_lengths(topology: Topology, pathway_ids: Sequence[str]) -> dict[str, int]:
    return {p: d.history_length for p, d in (await descriptions(topology, pathway_ids)).items() if d is not None}


# --- E-mails ------------------------------------------------------------------------------------


@dataclass
class Outbox:
    sent: set[str]
    pending: dict[str, datetime | None]  # key -> claimed_until (a lease) or None
    created: dict[str, datetime]


def outbox(topology: Topology, pathway_ids: Sequence[str]) -> Outbox:
    box = Outbox(set(), {}, {})
    table = models.Notification.__table__.c  # type: ignore[attr-defined]
    with topology.engine.connect() as connection:
        for chunk in _chunks(pathway_ids):
            for row in connection.execute(
                select(table.key, table.status, table.claimed_until, table.created_at).where(
                    table.pathway_id.in_(chunk)
                )
            ):
                box.created[row.key] = _aware(row.created_at)
                if row.status == "sent":
                    box.sent.add(row.key)
                elif row.status == "pending":
                    box.pending[row.key] = _aware(row.claimed_until) if row.claimed_until else None
    return box


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def received(topology: Topology, pathway_ids: Iterable[str]) -> Counter[str]:
    """E-mail keys that reached the SMTP sink, with how many times, for these pathways."""
    prefixes = tuple(f"{p}-" for p in pathway_ids)
    return Counter(k for k in topology.smtp.keys("") if k.startswith(prefixes))


# --- Catching up and checking -------------------------------------------------------------------


WEDGED_ATTEMPTS = 3
"""A run whose workflow task has failed this many times in a row is wedged: it does not go on by
itself (the dev server suspends it after a few more; an operator must look)."""


@dataclass
class CatchUp:
    read_model: float | None = None  # seconds from the fault's end until every pathway was in step once
    mail: float | None = None  # … until every e-mail recorded by then was delivered (leases of killed relays aside)
    leased: int = 0  # e-mails held by the lease of a killed relay (delivered once it expires)
    wedged: list[str] = field(default_factory=list)  # pathways whose workflow task keeps failing
    diverged: list[str] = field(default_factory=list)  # read model ahead of its run (an action the run lost)
    lagging: list[str] = field(default_factory=list)  # still not in step when the patience ran out


async def failing_tasks(topology: Topology, pathway_ids: Sequence[str]) -> dict[str, str]:
    """The pathways whose workflow task keeps failing, with the attempt it is at."""
    described = await descriptions(topology, pathway_ids)
    failing = {}
    for pid, description in described.items():
        if description is not None:
            attempt = description.raw_description.pending_workflow_task.attempt
            if attempt >= WEDGED_ATTEMPTS:
                failing[pid] = f"{pid}: workflow task failing, attempt {attempt}"
    return failing


def ahead(state: PathwayState, view: ReadModelView, pathway_id: str) -> bool:
    """The read model holds a later revision than the run: it shows the effects of a change the
    run does not have (written by a local activity whose workflow task was then lost)."""
    return view.revision.get(pathway_id, -1) > state.revision


async def catch_up(
    topology: Topology,
    pathway_ids: Sequence[str],
    ended: float,
    *,
    timeout: float = 900,
    mail: bool = True,
    strict: bool = True,
) -> CatchUp:
    """Wait until each pathway's read model has been seen in step with its run (once, since the
    fault ended: timers keep changing them), then until every e-mail recorded by that moment
    reached the sink. Times are measured from `ended` (time.monotonic()). Set aside, reported and
    not waited for: a pathway whose workflow task keeps failing (wedged), one whose read model is
    ahead of its run (diverged). Past `timeout`: TimeoutError if `strict`, else the pathways still
    waited for are reported as lagging."""
    result = CatchUp()
    waiting = set(pathway_ids)
    looked = time.monotonic()
    seen_ahead: Counter[str] = Counter()
    query_failed: Counter[str] = Counter()

    async def read_model_caught_up() -> bool:
        nonlocal looked
        failed: dict[str, str] = {}
        states = await run_states(topology, sorted(waiting), failed=failed)
        view = await asyncio.to_thread(read_model_view, topology, sorted(states))
        waiting.difference_update(p for p, s in states.items() if in_step(s, view, p))
        seen_ahead.update(p for p, s in states.items() if p in waiting and ahead(s, view, p))
        diverged = [p for p, n in seen_ahead.items() if n >= 3 and p in waiting]
        result.diverged += diverged
        waiting.difference_update(diverged)
        query_failed.update(failed)
        broken = [p for p, n in query_failed.items() if n >= 3 and p in waiting]
        result.wedged += [f"{p}: the run fails even to answer a query: {failed.get(p, '')[:120]}" for p in broken]
        waiting.difference_update(broken)
        if waiting and time.monotonic() - looked > 10:  # the laggards: failing workflow tasks?
            looked = time.monotonic()
            failing = await failing_tasks(topology, sorted(waiting))
            result.wedged += failing.values()
            waiting.difference_update(failing)
        return not waiting

    try:
        await until(read_model_caught_up, timeout=timeout, what="every pathway's read model in step with its run")
    except TimeoutError:
        if strict:
            raise
        result.lagging = sorted(waiting)
    result.read_model = time.monotonic() - ended
    if not mail:
        return result
    cutoff = datetime.now(UTC)

    async def mail_delivered() -> bool:
        box = await asyncio.to_thread(outbox, topology, pathway_ids)
        arrived = received(topology, pathway_ids)
        now = datetime.now(UTC)
        due = [
            k for k, claimed in box.pending.items() if box.created[k] <= cutoff and (claimed is None or claimed < now)
        ]
        unseen = [k for k in box.sent if box.created[k] <= cutoff and k not in arrived]
        result.leased = sum(1 for k, claimed in box.pending.items() if claimed is not None and claimed >= now)
        return not due and not unseen

    try:
        await until(mail_delivered, timeout=timeout, what="every e-mail recorded delivered")
    except TimeoutError:
        if strict:
            raise
    result.mail = time.monotonic() - ended
    return result


@dataclass
class Check:
    """The outcome on the pathways in flight, once caught up."""

    pathways: int
    lost: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    actions_wrong: list[str] = field(default_factory=list)  # answered actions not shown, or shown twice
    duplicates: dict[str, int] = field(default_factory=dict)  # key -> times received
    unknown_mail: list[str] = field(default_factory=list)  # received, but no row in the outbox
    sent_unmarked: list[str] = field(default_factory=list)  # received, still pending: sent again at lease expiry
    incidents: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    wedged: list[str] = field(default_factory=list)  # workflow task failing again and again
    diverged: list[str] = field(default_factory=list)  # read model ahead of the run: an action lost

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.wedged
            or self.diverged
            or self.terminated
            or self.actions_wrong
            or self.duplicates
            or self.unknown_mail
            or self.incidents
            or self.anomalies
        )

    def problems(self) -> str:
        parts = {
            "perdus": self.lost,
            "bloqués": self.wedged,
            "lecture en avance sur le parcours": self.diverged,
            "terminés": self.terminated,
            "actions non visibles ou en double": self.actions_wrong,
            "e-mails en double": list(self.duplicates.items()),
            "e-mails inconnus": self.unknown_mail,
            "incidents": self.incidents,
            "anomalies": self.anomalies,
        }
        return "; ".join(f"{name}: {items[:5]}" for name, items in parts.items() if items) or "aucun"


async def check(fleet: Fleet, tracks: Sequence[Track] | None = None) -> Check:
    topology = fleet.topology
    earlier = set(fleet.wedged)  # reported by an earlier check: left out
    tracks = [t for t in (tracks if tracks is not None else fleet.tracks.values()) if t.pathway_id not in earlier]
    ids = [t.pathway_id for t in tracks]
    result = Check(pathways=len(ids))
    described = await descriptions(topology, ids)
    view = await asyncio.to_thread(read_model_view, topology, ids)
    failed: dict[str, str] = {}
    states = await run_states(topology, ids, failed=failed)
    drifting: list[str] = []
    for track in tracks:
        pid, description = track.pathway_id, described.get(track.pathway_id)
        if description is None or pid not in view.revision:
            result.lost.append(pid)
            continue
        if description.status in ENDED:
            result.terminated.append(f"{pid} ({description.status.name})")
            continue
        result.anomalies += [f"{pid}: {a}" for a in track.anomalies]
        track.anomalies.clear()  # reported once
        attempt = description.raw_description.pending_workflow_task.attempt
        if attempt >= WEDGED_ATTEMPTS or pid in failed:
            result.wedged.append(f"{pid}: workflow task failing (attempt {attempt}) {failed.get(pid, '')[:120]}")
            fleet.wedged.add(pid)
            continue
        if description.typed_search_attributes.get(sa.INCIDENT):
            result.incidents.append(pid)
        state = states.get(pid)
        open_tasks = view.open_tasks.get(pid, {})
        shown = view.done.get(pid, 0)
        if state is not None and ahead(state, view, pid):
            result.diverged.append(
                f"{pid}: the read model (revision {view.revision[pid]}, {shown} done) is ahead of its run "
                f"(revision {state.revision}; {track.completed} actions answered): it shows an action the run "
                "never took"
            )
            fleet.wedged.add(pid)
        elif shown != track.completed or len(open_tasks) != 1:
            result.actions_wrong.append(
                f"{pid}: {track.completed} actions answered, {shown} shown done, {len(open_tasks)} open"
            )
            fleet.wedged.add(pid)
        elif state is None or not in_step(state, view, pid):
            drifting.append(pid)
    if drifting:  # a timer fired since the views were read: in step again once it is written
        again = await catch_up(topology, drifting, time.monotonic(), timeout=120, mail=False, strict=False)
        result.wedged += again.wedged
        result.diverged += again.diverged
        result.actions_wrong += [f"{pid}: the read model never caught up with its run" for pid in again.lagging]
        fleet.wedged.update(again.diverged, again.lagging, (w.split(":")[0] for w in again.wedged))
    arrived = received(topology, ids)
    box = await asyncio.to_thread(outbox, topology, ids)
    result.duplicates = {k: n for k, n in arrived.items() if n > 1}
    result.unknown_mail = [k for k in arrived if k not in box.created]
    result.sent_unmarked = [k for k in arrived if k in box.pending]
    return result


# --- Figures ----------------------------------------------------------------------------------


@dataclass
class Figures:
    fault: str
    pathways: int
    check: Check
    catch_up: CatchUp
    seen: Seen
    history: str = "—"  # history events a pathway gains from the fault
    per_hour: str = "—"  # … per hour of outage
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)  # time.monotonic() at the fault's start, once caught up
    twice: list[str] | None = None  # keys received twice whose first copy arrived during this fault
    unmarked: list[str] | None = None  # … received once, not marked sent: sent again at lease expiry
    leases_waited: bool = False

    def row(self) -> list[str]:
        c = self.check
        catch = []
        if self.catch_up.read_model is not None:
            catch.append(f"read model {self.catch_up.read_model:.1f} s")
        if self.catch_up.mail is not None:
            catch.append(f"e-mails {self.catch_up.mail:.1f} s")
        if self.catch_up.leased:
            catch.append(f"{self.catch_up.leased} e-mail(s) held by a lease ({LEASE_SECONDS / 60:.0f} min)")
        return [
            self.fault,
            str(self.pathways),
            str(len(c.lost)),
            str(len(c.wedged)),
            str(len(c.actions_wrong) + len(c.diverged)),
            self.duplicates_cell(),
            str(len(c.terminated)),
            self.history,
            self.per_hour,
            ", ".join(catch) or "—",
            "<br>".join(self.seen.lines(90)) or "—",
        ]

    def duplicates_cell(self) -> str:
        if self.twice is None:  # not attributed (a fault run on its own)
            return str(len(self.check.duplicates))
        cell = str(len(self.twice))
        if self.leases_waited:
            return cell + (" (same Message-ID, once a lease expired)" if self.twice else "")
        if self.unmarked:
            cell += f" (+{len(self.unmarked)} sent but not marked: sent again at lease expiry, same Message-ID)"
        return cell


HEADER = [
    "fault",
    "pathways",
    "lost",
    "wedged",
    "actions lost or shown wrong",
    "e-mails twice for one key",
    "terminated",
    "history events added per pathway",
    "per hour of outage",
    "time to catch up",
    "what a user saw (status ×count « message »)",
]


def markdown(figures: Sequence[Figures]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in f.row()) + " |" for f in figures]
    return "\n".join(lines)


def describe_figures(figures: Figures) -> None:
    say(f"== {figures.fault}: {figures.pathways} pathways")
    c = figures.check
    say(
        f"   lost {len(c.lost)}, wedged {len(c.wedged)}, diverged {len(c.diverged)}, "
        f"actions wrong {len(c.actions_wrong)}, terminated {len(c.terminated)}, "
        f"e-mails twice for one key {len(c.duplicates)}"
    )
    say(f"   problems: {c.problems()}")
    if c.sent_unmarked:
        say(f"   sent but not marked (sent again with the same Message-ID at lease expiry): {len(c.sent_unmarked)}")
    say(f"   history: {figures.history}; per hour of outage: {figures.per_hour}")
    say(f"   catch-up: {figures.catch_up}")
    for line in figures.seen.lines():
        say(f"   user saw: {line}")
    for note in figures.notes:
        say(f"   note: {note}")
    shown = {k: v for k, v in figures.raw.items() if not isinstance(v, list)}
    if shown:
        say(f"   raw: {shown}")


def _stats(values: Iterable[int]) -> str:
    values = list(values)
    if not values:
        return "—"
    return f"mean {statistics.fmean(values):.1f}, max {max(values)}"


# --- The faults -----------------------------------------------------------------------------------


async def restore(topology: Topology) -> None:
    """Start again whatever a fault left stopped (a fault that failed half-way), each step on its own."""
    steps: list[Callable[[], Awaitable[Any]]] = []
    if not topology.postgres.running:
        steps.append(topology.start_postgres)
    if not topology.smtp.running:
        steps.append(lambda: asyncio.to_thread(topology.start_smtp))
    if topology.temporal.process is None or topology.temporal.process.poll() is not None:
        steps.append(topology.start_temporal)
    steps += [(lambda i=i: topology.start_worker(i)) for i, w in enumerate(topology.workers) if not w.running]
    if not topology.ui.running:
        steps.append(topology.start_ui)
    for step in steps:
        with contextlib.suppress(Exception):
            await step()


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def restoring(fault: F) -> F:
    """A fault that fails leaves the topology as it found it (its driver stopped, every process up)."""

    @functools.wraps(fault)
    async def run(fleet: Fleet, *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            figures = await fault(fleet, *args, **kwargs)
            figures.window = (began, time.monotonic())
            return figures
        except BaseException:
            for driver in fleet.drivers:
                driver.cancel()
            await restore(fleet.topology)
            raise

    return run  # type: ignore[return-value]


async def one_action_cost(fleet: Fleet, tracks: Sequence[Track]) -> float:
    """History events one action adds to a quiet pathway, with every service up (the baseline)."""
    before = await history_lengths(fleet.topology, [t.pathway_id for t in tracks])
    await asyncio.gather(*(fleet.act(t, Seen()) for t in tracks))
    after = await history_lengths(fleet.topology, [t.pathway_id for t in tracks])
    return statistics.fmean(after[p] - before[p] for p in before)


async def _timer_events_between(topology: Topology, ids: Sequence[str], start: datetime, end: datetime) -> int:
    def count() -> int:
        audit = models.AuditEvent.__table__.c  # type: ignore[attr-defined]
        with topology.engine.connect() as connection:
            return sum(
                connection.execute(
                    select(func.count()).where(
                        audit.pathway_id.in_(chunk),
                        audit.action.in_(TIMER_ACTIONS),
                        audit.at >= start,
                        audit.at <= end,
                    )
                ).scalar_one()
                for chunk in _chunks(ids)
            )

    return await asyncio.to_thread(count)


async def answered(action: Awaitable[UpdateResult]) -> tuple[float, UpdateResult]:
    """An action's answer and how long its caller waited for it."""
    sent = time.monotonic()
    answer = await action
    return time.monotonic() - sent, answer


def _update_message(answer: UpdateResult) -> str:
    return answer.message if answer.projected else f"(projected=False) {answer.message}"


@restoring
async def read_model_outage(
    fleet: Fleet,
    *,
    outage: float,
    timed: Sequence[Track],
    quiet: Sequence[Track],
    baseline: float,
    label: str = "(a) read-model PostgreSQL stopped",
    warm_actions: int | None = None,
    clients: int = 8,
) -> Figures:
    """Stop the read model's PostgreSQL for `outage` seconds while clients act on the timed
    pathways through the API and their timers fire; as it stops, one action per quiet pathway is
    accepted by its run (an update in flight). Their history is read as the outage begins, once
    each shows its incident (durable retries from then on), just before PostgreSQL returns, and
    once caught up."""
    topology = fleet.topology
    seen = fleet.seen = Seen()
    driver = Driver(fleet, timed, clients=clients).start()
    await driver.warm(warm_actions if warm_actions is not None else len(timed) // 2)
    quiet_ids = [t.pathway_id for t in quiet]
    await fleet.actor()  # who acts, read before the read model goes away
    before = await history_lengths(topology, quiet_ids)
    started_at, began = datetime.now(UTC), time.monotonic()
    await topology.stop_postgres("fast")
    say(f"{label}: PostgreSQL stopped")
    direct = {t.pathway_id: asyncio.create_task(answered(fleet.act_in_temporal(t))) for t in quiet}
    incident_seen: dict[str, int] = {}

    async def incidents() -> bool:
        """Each quiet pathway answered its action and fell back to durable retries: its history then."""
        for pid in quiet_ids:
            if pid not in incident_seen and direct[pid].done():
                description = await topology.client.get_workflow_handle(pid).describe(rpc_timeout=RPC_TIMEOUT)  # type: ignore[union-attr]
                if description.typed_search_attributes.get(sa.INCIDENT) == "commit":
                    incident_seen[pid] = description.history_length
        return len(incident_seen) == len(quiet_ids)

    with contextlib.suppress(TimeoutError):
        await until(incidents, timeout=max(0.0, outage - (time.monotonic() - began)), what="incidents")
    await asyncio.sleep(max(0.0, outage - (time.monotonic() - began)))  # the fault's length
    at_end = await history_lengths(topology, quiet_ids)
    ended_at = datetime.now(UTC)
    await topology.start_postgres()
    ended = time.monotonic()
    say(f"{label}: PostgreSQL back after {ended - began:.0f}s")
    direct_answers = await asyncio.gather(*direct.values())
    for waited, answer in direct_answers:
        seen.note("update", _update_message(answer), waited)
    await driver.stop()
    caught = await fleet.caught_up(ended)
    after = await history_lengths(topology, quiet_ids)
    result = await check(fleet)
    timer_events = await _timer_events_between(topology, [t.pathway_id for t in timed], started_at, ended_at)
    added = [after[p] - before[p] for p in quiet_ids]
    extra = [a - baseline for a in added]
    durable = [at_end[p] - incident_seen[p] for p in incident_seen]
    figures = Figures(
        fault=f"{label} {outage:.0f} s",
        pathways=len(fleet.tracks),
        check=result,
        catch_up=caught,
        seen=seen,
        history=f"{statistics.fmean(extra):+.1f} (max {max(extra):+.0f}) beyond one action's {baseline:.0f}"
        if extra
        else "—",
        notes=[
            f"{len(incident_seen)}/{len(quiet_ids)} quiet pathways answered their action and reached durable retries "
            f"(ParcoursIncident=commit) during the outage; events they gained from then until PostgreSQL returned: "
            f"{_stats(durable)}",
            f"timer events (reminders, overdue notices, escalations) fired during the outage: {timer_events}",
            f"actions answered during the fault window: {driver.done}",
        ],
        raw={
            "quiet_added": _stats(added),
            "durable_phase_added": _stats(durable),
            "incidents_seen": len(incident_seen),
            "timer_events": timer_events,
        },
    )
    figures.raw.update(
        durable_values=durable, added_values=added, answers=[a for _, a in direct_answers], baseline=baseline
    )
    return figures


@restoring
async def scaled_read_model_outage(
    fleet: Fleet,
    *,
    scale: float,
    hours: int,
    count: int,
    baseline: float,
) -> Figures:
    """Budgets divided by `scale` (so 3600/scale seconds stand for an hour): `count` quiet
    pathways started with them (through the application layer, as the UI would with those
    settings), one action each accepted as PostgreSQL stops, then their history read at the start
    and after each scaled hour of outage. Growth per hour: the mean of the hourly increments
    after the first hour; the 72-hour extrapolation: first hour + 71 × that."""
    topology = fleet.topology
    service = PathwayService(
        topology.client,  # type: ignore[arg-type]
        topology.engine,
        task_queue=topology.task_queue,
        commit_local_seconds=PRODUCTION_BUDGETS["local"] / scale,
        answer_within_seconds=PRODUCTION_BUDGETS["answer"] / scale,
        commit_retry_seconds=(PRODUCTION_BUDGETS["retry_first"] / scale, PRODUCTION_BUDGETS["retry_max"] / scale),
    )
    actor = await fleet.actor()
    tracks: list[Track] = []

    async def start_one() -> None:
        pid = await service.start_pathway(
            definition_id=QUIET,
            basin_id="annecien",
            referent_org=actor.organisation_id,
            person={"first_name": "Alex", "last_name": f"Échelle-{uuid.uuid4().hex[:6]}", "consent": True},
            actor=actor,
        )
        track = Track(pathway_id=pid, definition=QUIET)
        fleet.tracks[pid] = track
        tracks.append(track)

    gate = asyncio.Semaphore(8)

    async def gated() -> None:
        async with gate:
            await start_one()

    await asyncio.gather(*(gated() for _ in range(count)))
    ids = [t.pathway_id for t in tracks]
    hour = 3600.0 / scale
    seen = Seen()
    samples = [await history_lengths(topology, ids)]
    await topology.stop_postgres("fast")
    began = time.monotonic()
    say(f"(a') scaled ×1/{scale:.0f}: PostgreSQL stopped; one scaled hour = {hour:.0f}s")
    direct = [asyncio.create_task(answered(fleet.act_in_temporal(t))) for t in tracks]
    for n in range(1, hours + 1):
        await asyncio.sleep(max(0.0, began + n * hour - time.monotonic()))  # the outage's scaled hours
        samples.append(await history_lengths(topology, ids))
        say(f"(a') after {n} scaled hour(s): {_stats(samples[-1][p] - samples[0][p] for p in ids)} events added")
    await topology.start_postgres()
    ended = time.monotonic()
    for waited, answer in await asyncio.gather(*direct):
        seen.note("update", _update_message(answer), waited)
    caught = await fleet.caught_up(ended, ids)
    # The other pathways (production budgets) wrote nothing meanwhile unless a timer fired: those
    # retry durably, their backoff grown with the outage; all are caught up before the next fault.
    others = await fleet.caught_up(ended)
    result = await check(fleet)
    first = [samples[1][p] - samples[0][p] for p in ids]
    increments = [samples[n + 1][p] - samples[n][p] for n in range(1, hours) for p in ids]
    per_hour = statistics.fmean(increments) if increments else float("nan")
    first_hour = statistics.fmean(first)
    extrapolated = first_hour + 71 * per_hour
    worst = max(first) + 71 * (max(increments) if increments else 0)
    return Figures(
        fault=f"(a′) read model stopped, scaled time (budgets ÷{scale:.0f}, {hours} h in {hours * hour:.0f} s)",
        pathways=len(tracks),
        check=result,
        catch_up=caught,
        seen=seen,
        history=f"1st hour {first_hour:.1f} (max {max(first)}), incl. one action's {baseline:.0f}",
        per_hour=f"{per_hour:.2f} after the 1st hour → 72 h ≈ {extrapolated:.0f} (worst {worst:.0f}) events",
        notes=[
            "history per pathway at the start and after each scaled hour: "
            + ", ".join(f"h{n}: {_stats(s[p] for p in ids)}" for n, s in enumerate(samples)),
            "scaled budgets shorten the local phase below a workflow task's timeout, so its task heartbeats"
            " (a few events) are counted in (a), not here",
            f"the pathways on production budgets whose timers fired meanwhile caught up {others.read_model:.0f}s "
            f"after PostgreSQL returned (their durable retries back off up to 10 min)",
        ],
        raw={"scale": scale, "hour_seconds": hour, "first_hour": first, "increments": _stats(increments)},
    )


@restoring
async def smtp_outage(fleet: Fleet, *, outage: float, tracks: Sequence[Track], clients: int = 8) -> Figures:
    """Stop the SMTP server for `outage` seconds while clients act and timers fire: every update
    keeps answering; once it is back every e-mail arrives, once per key."""
    topology = fleet.topology
    seen = fleet.seen = Seen()
    driver = Driver(fleet, tracks, clients=clients).start()
    await driver.warm(len(tracks) // 4)
    stopped_at, began = datetime.now(UTC), time.monotonic()
    topology.stop_smtp()
    say(f"(b) SMTP stopped for {outage:.0f}s")
    done_before = driver.done
    await asyncio.sleep(outage)  # the fault's length
    during = driver.done - done_before
    box = await asyncio.to_thread(outbox, topology, [t.pathway_id for t in tracks])
    recorded_during = sum(1 for k, c in box.created.items() if c >= stopped_at)
    waiting = len(box.pending)
    topology.start_smtp()
    ended = time.monotonic()
    say(f"(b) SMTP back after {ended - began:.0f}s; {waiting} e-mails waiting")
    await driver.stop()
    caught = await fleet.caught_up(ended)
    result = await check(fleet)
    return Figures(
        fault=f"(b) SMTP down {outage:.0f} s",
        pathways=len(fleet.tracks),
        check=result,
        catch_up=caught,
        seen=seen,
        history="0 (e-mails are out of the workflow's path)",
        notes=[
            f"actions answered while SMTP was down: {during}",
            f"e-mails recorded while SMTP was down: {recorded_during}; waiting when it came back: {waiting}",
        ],
        raw={"actions_during": during, "mail_during": recorded_during, "waiting": waiting},
    )


@restoring
async def worker_kills(
    fleet: Fleet,
    *,
    kills: int,
    tracks: Sequence[Track],
    gap: tuple[float, float] = (1.0, 6.0),
    clients: int = 8,
    seed: int | None = None,
) -> Figures:
    """kill -9 one worker `kills` times at random points (a random pause, a random worker), each
    restarted at once, while clients act and timers fire."""
    topology = fleet.topology
    rng = random.Random(seed)
    seen = fleet.seen = Seen()
    driver = Driver(fleet, tracks, clients=clients).start()
    await driver.warm(len(tracks) // 4)
    killed: list[str] = []
    for n in range(kills):
        await asyncio.sleep(rng.uniform(*gap))  # a random point in the work
        index = rng.randrange(len(topology.workers))
        pid = topology.workers[index].pid
        await topology.kill_worker(index)
        killed.append(f"worker-{index + 1} (pid {pid})")
        say(f"(c) kill -9 {killed[-1]} [{n + 1}/{kills}]")
        await topology.start_worker(index)
    ended = time.monotonic()
    await driver.stop()
    caught = await fleet.caught_up(ended)
    result = await check(fleet)
    return Figures(
        fault=f"(c) one worker kill -9 ×{kills}",
        pathways=len(fleet.tracks),
        check=result,
        catch_up=caught,
        seen=seen,
        history="— (no outage: a killed worker's tasks time out and run elsewhere)",
        notes=[f"killed: {', '.join(killed)}", f"actions answered during the kills: {driver.done}"],
        raw={"kills": killed},
    )


@restoring
async def temporal_restart(fleet: Fleet, *, down: float, tracks: Sequence[Track], clients: int = 8) -> Figures:
    """kill -9 the Temporal dev server, leave it down for `down` seconds, start it again on its file."""
    topology = fleet.topology
    seen = fleet.seen = Seen()
    driver = Driver(fleet, tracks, clients=clients).start()
    await driver.warm(len(tracks) // 4)
    began = time.monotonic()
    await topology.kill_temporal()
    say(f"(d) Temporal killed, down for {down:.0f}s")
    await asyncio.sleep(down)  # the fault's length
    await topology.start_temporal()
    ended = time.monotonic()
    say(f"(d) Temporal back after {ended - began:.0f}s")
    for worker in topology.workers:
        worker.check_alive()
    await driver.stop()
    caught = await fleet.caught_up(ended)
    result = await check(fleet)
    return Figures(
        fault=f"(d) Temporal killed, restarted on its file after {down:.0f} s",
        pathways=len(fleet.tracks),
        check=result,
        catch_up=caught,
        seen=seen,
        history="—",
        notes=[f"actions answered around the restart: {driver.done}"],
    )


# -- (e) the UI killed mid-request --


@dataclass
class Cut:
    """One request cut by killing the UI, then retried with the same Idempotency-Key."""

    kind: str  # start or complete
    point: str
    first: str  # what the first attempt got
    retry_status: int
    same_answer: bool  # a third send gets exactly the retry's answer
    effects: int  # pathways (start) or completions (complete) the request made
    extra: str = ""


def _request_row(topology: Topology, user_id: str, key: str) -> models.CommandRequest | None:
    from sqlmodel import Session

    with Session(topology.engine) as session:
        return session.get(models.CommandRequest, (user_id, key))


async def _in_temporal(topology: Topology, row: models.CommandRequest, update_id: str) -> bool:
    """Whether Temporal holds the request, waiting for a worker: the run it starts exists, or the
    update (its id: the user's id and the request id, services/requests.py) is admitted."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
    from temporalio.api.update.v1 import UpdateRef, WaitPolicy
    from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest

    assert topology.client is not None and row.pathway_id is not None
    try:
        if row.kind == "start":
            await topology.client.get_workflow_handle(row.pathway_id).describe(rpc_timeout=RPC_TIMEOUT)
        else:
            await topology.client.workflow_service.poll_workflow_execution_update(
                PollWorkflowExecutionUpdateRequest(
                    namespace=topology.client.namespace,
                    update_ref=UpdateRef(
                        workflow_execution=WorkflowExecution(workflow_id=row.pathway_id), update_id=update_id
                    ),
                    identity="faults",
                    wait_policy=WaitPolicy(
                        lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
                    ),
                ),
                timeout=timedelta(seconds=2),
            )
    except RPCError:
        return False
    return True


def _people_named(topology: Topology, last_name: str) -> tuple[int, int]:
    """(persons, pathways) of the person with this last name."""
    person, pathway = models.Person.__table__.c, models.Pathway.__table__.c  # type: ignore[attr-defined]
    with topology.engine.connect() as connection:
        people = list(connection.execute(select(person.id).where(person.last_name == last_name)).scalars())
        pathways = (
            connection.execute(select(func.count()).where(pathway.person_id.in_(people))).scalar_one() if people else 0
        )
    return len(people), pathways


def _task_row(topology: Topology, task_id: str) -> tuple[str, str | None]:
    task = models.Task.__table__.c  # type: ignore[attr-defined]
    with topology.engine.connect() as connection:
        row = connection.execute(select(task.status, task.outcome).where(task.id == task_id)).one()
    return row.status, row.outcome


async def _cut(
    fleet: Fleet,
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    point: str,
    key: str,
    rng: random.Random,
    seen: Seen,
) -> tuple[str, httpx.Response, bool]:
    """Send, kill the UI at `point` (`waiting`: while Temporal has no worker to answer, once the
    request is recorded; `random`: after a random pause), start the UI again (and the workers),
    then retry with the same key until answered; a third send must give the same answer."""
    topology = fleet.topology
    user_id = (await fleet.actor()).user_id
    if point == "waiting":
        for index in range(len(topology.workers)):
            await topology.kill_worker(index)
    first = asyncio.create_task(send())
    if point == "waiting":
        row = await until(
            lambda: asyncio.to_thread(_request_row, topology, user_id, key), timeout=60, what="the request recorded"
        )
        await until(lambda: _in_temporal(topology, row, f"{user_id}:{key}"), timeout=60, what="the request in Temporal")
    else:
        await asyncio.sleep(rng.uniform(0.0, 0.4))  # a random point of the request
    await topology.kill_ui()
    try:
        response = await first
        got = f"{response.status_code} {_detail(response)}"
        seen.response(response)
    except httpx.TransportError as error:
        got = _transport(error)
        seen.error(error)
    if point == "waiting":
        await asyncio.gather(*(topology.start_worker(i) for i in range(len(topology.workers))))
    await topology.start_ui()
    retry = await fleet.send(send, seen)
    again = await send()
    same = again.status_code == retry.status_code and again.json() == retry.json()
    return got, retry, same


@restoring
async def ui_kills(fleet: Fleet, *, trials: int, tracks: Sequence[Track], seed: int | None = None) -> Figures:
    """Kill the UI mid-request: a start and a completion while Temporal waits for a worker, then
    `trials - 2` requests (starts and completions in turn) cut at random points."""
    topology = fleet.topology
    rng = random.Random(seed)
    seen = Seen()
    cuts: list[Cut] = []
    began = time.monotonic()
    points = ["waiting", "waiting", *["random"] * max(0, trials - 2)]
    pool = fleet.live(tracks)
    for n, point in enumerate(points):
        key = str(uuid.uuid4())
        if n % 2 == 0:  # a start
            last_name = f"Coupure-{uuid.uuid4().hex[:8]}"
            person = {"first_name": "Alex", "last_name": last_name, "consent": True}
            got, retry, same = await _cut(
                fleet,
                lambda person=person, key=key: fleet.user.start_pathway(QUIET, person=person, request_id=key),
                point=point,
                key=key,
                rng=rng,
                seen=seen,
            )
            people, pathways = await asyncio.to_thread(_people_named, topology, last_name)
            if retry.status_code == 201:
                fleet.tracks.setdefault(
                    retry.json()["pathway_id"], Track(pathway_id=retry.json()["pathway_id"], definition=QUIET)
                )
            cuts.append(Cut("start", point, got, retry.status_code, same, pathways, f"{people} person(s)"))
        else:  # a completion
            track = pool[n % len(pool)]
            if track.task_id is None:
                await fleet.act(track, Seen())  # learn the open task
            task_id = track.task_id
            assert task_id is not None
            got, retry, same = await _cut(
                fleet,
                lambda task_id=task_id, key=key: fleet.user.complete_task(task_id, "encore", request_id=key),
                point=point,
                key=key,
                rng=rng,
                seen=seen,
            )
            status, outcome = await asyncio.to_thread(_task_row, topology, task_id)
            if retry.status_code == 200:
                track.completed += 1
                opened = retry.json()["opened"]
                track.task_id = opened[0] if len(opened) == 1 else None
            else:
                track.task_id = None
            cuts.append(
                Cut("complete", point, got, retry.status_code, same, int(status == "done"), f"task {status}/{outcome}")
            )
        say(f"(e) {cuts[-1]}")
    ended = time.monotonic()
    caught = await fleet.caught_up(ended)
    result = await check(fleet)
    wrong = [c for c in cuts if c.effects != 1 or not c.same_answer or c.retry_status not in (200, 201)]
    result.actions_wrong += [f"{c}" for c in wrong]
    return Figures(
        fault=f"(e) UI killed mid-request ×{len(cuts)}, retried with the same Idempotency-Key",
        pathways=len(fleet.tracks),
        check=result,
        catch_up=caught,
        seen=seen,
        history="—",
        notes=[
            f"{c.kind} cut {c.point}: first attempt « {c.first} », retry {c.retry_status}, "
            f"same answer again {c.same_answer}, effects {c.effects} ({c.extra})"
            for c in cuts
        ]
        + [f"time for all trials: {ended - began:.0f}s"],
        raw={"cuts": cuts},
    )


# --- Setting up -----------------------------------------------------------------------------------


async def publish_definitions(topology: Topology, timed_yaml: str) -> None:
    """As a designer would, through the API (Idempotency-Key included)."""
    async with await topology.api(DESIGNER) as designer:
        for text in (timed_yaml, QUIET_DEFINITION):
            response = await designer.http.post(
                "/api/definitions",
                content=text.encode(),
                headers={"Content-Type": "application/yaml", "Idempotency-Key": str(uuid.uuid4())},
            )
            if response.status_code not in (200, 201):
                raise RuntimeError(f"publishing failed: {response.status_code} {response.text}")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return f"{cpu}, {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


async def run(arguments: argparse.Namespace) -> list[Figures]:
    figures: list[Figures] = []
    chosen = set(arguments.only or "abcde")
    say(f"starting the production topology ({machine()})")
    async with Topology(workers=2, ui_workers=3) as topology:
        await publish_definitions(topology, timed_definition(arguments.due, arguments.due // 2, arguments.due // 2))
        # A user gives up on an action after 3 minutes; a catch-up is waited for 10 (the longest backoff).
        fleet = await Fleet.open(topology, strict=False, give_up=180.0, patience=600.0)
        try:
            quiet_count = max(2, arguments.pathways // 5)
            began = time.monotonic()
            timed = await fleet.start(arguments.pathways - quiet_count, TIMED)
            quiet = await fleet.start(quiet_count, QUIET)
            say(f"{len(fleet.tracks)} pathways started in {time.monotonic() - began:.0f}s")
            baseline = await one_action_cost(fleet, quiet)
            say(f"one action adds {baseline:.1f} history events to a quiet pathway (all services up)")

            def report(figure: Figures) -> None:
                describe_figures(figure)
                figures.append(figure)

            if "a" in chosen:
                report(
                    await read_model_outage(fleet, outage=arguments.outage, timed=timed, quiet=quiet, baseline=baseline)
                )
                report(
                    await scaled_read_model_outage(
                        fleet,
                        scale=arguments.scale,
                        hours=arguments.scaled_hours,
                        count=arguments.scaled_pathways,
                        baseline=baseline,
                    )
                )
            if "b" in chosen:
                report(await smtp_outage(fleet, outage=arguments.smtp_outage, tracks=[*timed, *quiet]))
            if "c" in chosen:
                report(await worker_kills(fleet, kills=arguments.kills, tracks=[*timed, *quiet], seed=arguments.seed))
            if "d" in chosen:
                report(await temporal_restart(fleet, down=arguments.temporal_down, tracks=[*timed, *quiet]))
            if "e" in chosen:
                report(await ui_kills(fleet, trials=arguments.ui_trials, tracks=quiet, seed=arguments.seed))
            if arguments.wait_leases:
                await after_leases(fleet)
            await attribute(fleet, figures, leases_waited=arguments.wait_leases)
        finally:
            await fleet.aclose()
            if arguments.logs:
                shutil.copytree(topology.logs, arguments.logs, dirs_exist_ok=True)
    return figures


async def after_leases(fleet: Fleet) -> None:
    """Wait until no e-mail is pending: the leases of those a relay held when it was killed or
    lost its database have expired, and they went out."""
    say(f"waiting for the e-mails held by leases ({LEASE_SECONDS / 60:.0f} min) …")
    began = time.monotonic()
    ids = list(fleet.tracks)

    async def drained() -> bool:
        return not (await asyncio.to_thread(outbox, fleet.topology, ids)).pending

    await until(drained, timeout=LEASE_SECONDS + 300, what="every leased e-mail sent")
    say(f"leased e-mails delivered {time.monotonic() - began:.0f}s later")


async def attribute(fleet: Fleet, figures: Sequence[Figures], *, leases_waited: bool) -> None:
    """Each e-mail key received twice (and each sent but not marked), counted against the fault
    during which its first copy arrived."""
    first: dict[str, float] = {}
    times: Counter[str] = Counter()
    for moment, key in fleet.arrivals:
        first.setdefault(key, moment)
        times[key] += 1
    pending = (await asyncio.to_thread(outbox, fleet.topology, list(fleet.tracks))).pending
    starts = [f.window[0] for f in figures] + [float("inf")]
    for index, figure in enumerate(figures):
        here = [k for k in times if starts[index] <= first[k] < starts[index + 1]]
        figure.twice = sorted(k for k in here if times[k] > 1)
        figure.unmarked = sorted(k for k in here if times[k] == 1 and k in pending)
        figure.leases_waited = leases_waited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pathways", type=int, default=200, help="pathways in flight (200)")
    parser.add_argument("--due", type=int, default=40, help="seconds to a timed task's deadline (40)")
    parser.add_argument("--outage", type=float, default=60.0, help="(a) seconds the read model is down (60)")
    parser.add_argument("--scale", type=float, default=60.0, help="(a') budgets divided by this (60)")
    parser.add_argument("--scaled-hours", type=int, default=3, help="(a') scaled hours of outage (3)")
    parser.add_argument("--scaled-pathways", type=int, default=50, help="(a') pathways on scaled budgets (50)")
    parser.add_argument("--smtp-outage", type=float, default=300.0, help="(b) seconds SMTP is down (300)")
    parser.add_argument("--kills", type=int, default=10, help="(c) kill -9 of a worker (10)")
    parser.add_argument(
        "--wait-leases",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="at the end, wait for the e-mails held by leases, then count duplicates again (on)",
    )
    parser.add_argument("--temporal-down", type=float, default=30.0, help="(d) seconds Temporal is down (30)")
    parser.add_argument("--ui-trials", type=int, default=10, help="(e) requests cut by killing the UI (10)")
    parser.add_argument("--only", default=None, help="faults to run, e.g. 'ae' (all)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--logs", type=Path, default=None, help="copy the processes' logs to this folder at the end")
    arguments = parser.parse_args()
    started = datetime.now(UTC)
    try:
        figures = asyncio.run(run(arguments))
    except Exception as error:  # noqa: BLE001  (a bench reports, then exits non-zero)
        say(f"failed: {error!r}")
        os._exit(1)
    table = markdown(figures)
    heading = (
        f"Fault suite, {started:%Y-%m-%d %H:%M} UTC, on {machine()}; "
        f"{arguments.pathways} pathways in flight (+{arguments.scaled_pathways} on scaled budgets)."
    )
    print("\n" + heading + "\n\n" + table + "\n", flush=True)
    for figure in figures:
        if figure.notes:
            print(f"- {figure.fault}: " + " · ".join(figure.notes), flush=True)
    if arguments.markdown:
        arguments.markdown.write_text(heading + "\n\n" + table + "\n")
    ok = all(f.check.ok for f in figures)
    os._exit(0 if ok else 2)  # the SDK's threads can abort CPython's finalisation (temporalio/sdk-python#300)


if __name__ == "__main__":
    main()
