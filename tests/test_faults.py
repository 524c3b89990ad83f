"""The fault suite (issue 9, §6) on the production topology (tests/topology.py): pathways in
flight through the HTTP API, then each fault in turn, while API clients act and timers fire.
Outcomes only: no pathway lost or terminated, every answered action shown once in the read
model, every e-mail delivered once per key, what users saw (status codes, French messages).

bench/faults.py runs the same scenarios with 200 pathways and production-length faults, and
prints the figures (make faults). Here fewer pathways (32) and short faults (seconds), with the
read-model budgets scaled down (2 s of local writes, answers within 2 s, durable retries from
0.5 s to 4 s), keep CI fast. One topology serves the module; each test puts its own pathways in
flight. Also: the UI's 503 when the read model does not answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from admin_ui.app import DATABASE_DOWN, create_app, database_down
from bench.faults import (
    QUIET,
    TIMED,
    Check,
    Figures,
    Fleet,
    one_action_cost,
    publish_definitions,
    read_model_outage,
    smtp_outage,
    temporal_restart,
    timed_definition,
    ui_kills,
    worker_kills,
)
from parcours.settings import Settings
from store.db import make_engine
from tests.topology import Topology
from worker.temporal_server import free_port
from workflows.pathway import RECORDED_DISPLAY_FOLLOWS

TEST_BUDGETS = {
    "PARCOURS_COMMIT_LOCAL_SECONDS": "2",
    "PARCOURS_ANSWER_WITHIN_SECONDS": "2",
    "PARCOURS_COMMIT_RETRY_FIRST_SECONDS": "0.5",
    "PARCOURS_COMMIT_RETRY_MAX_SECONDS": "4",
}
TIMED_PATHWAYS, QUIET_PATHWAYS = 24, 8
UNAVAILABLE = "Service momentanément indisponible"


@pytest.fixture(scope="module")
async def topology() -> AsyncIterator[Topology]:
    """One production topology for the module (its start is most of a test's cost); timed tasks
    have a reminder at 4 s, a deadline at 8 s and an escalation at 12 s."""
    async with Topology(env=TEST_BUDGETS) as running:
        await publish_definitions(running, timed_definition(due=8, before=4, escalate_after=4))
        yield running


@pytest.fixture
async def fleet(topology: Topology) -> AsyncIterator[Fleet]:
    fleet = await Fleet.open(topology, give_up=180.0)
    try:
        yield fleet
    finally:
        await fleet.aclose()


def assert_sound(figures: Figures) -> Check:
    """Nothing lost, terminated, wedged or duplicated: every answered action shown once, every
    e-mail once per key; printed with what users saw (pytest shows it on failure, -s always)."""
    print(f"\n{figures.fault}: users saw\n  " + "\n  ".join(figures.seen.lines()))
    for note in figures.notes:
        print(f"  {note}")
    check = figures.check
    assert check.lost == [], f"pathways lost: {check.lost}"
    assert check.wedged == [], f"pathways wedged: {check.wedged}"
    assert check.diverged == [], f"read model ahead of its run (an action lost): {check.diverged}"
    assert check.terminated == [], f"pathways terminated: {check.terminated}"
    assert check.actions_wrong == [], f"actions not shown once in the read model: {check.actions_wrong}"
    assert check.duplicates == {}, f"e-mails sent twice for one key: {check.duplicates}"
    assert check.unknown_mail == [], check.unknown_mail
    assert check.incidents == [], f"incidents left once caught up: {check.incidents}"
    assert check.anomalies == [], check.anomalies
    statuses = figures.seen.statuses()
    assert statuses["500"] == 0, "a user saw an internal error (500)"
    return check


async def test_a_read_model_outage_loses_nothing_and_bounds_history(topology: Topology, fleet: Fleet) -> None:
    """(a) PostgreSQL stopped for 12 s while clients act and timers fire; as it stops, one action
    per quiet pathway reaches its run (requests in flight)."""
    timed = await fleet.start(TIMED_PATHWAYS, TIMED)
    quiet = await fleet.start(QUIET_PATHWAYS, QUIET)
    baseline = await one_action_cost(fleet, quiet)

    figures = await read_model_outage(fleet, outage=12, timed=timed, quiet=quiet, baseline=baseline, clients=6)
    assert_sound(figures)

    # The actions in flight were answered, truthfully: recorded, the pages will follow.
    answers = figures.raw["answers"]
    assert len(answers) == QUIET_PATHWAYS
    assert all(a.projected is False and a.message.endswith(RECORDED_DISPLAY_FOLLOWS) for a in answers)
    # Clients acting meanwhile were told the database does not answer (503, in French), never a 500.
    assert any(status == "503" and DATABASE_DOWN in message for status, message in figures.seen.counts)
    assert figures.raw["timer_events"] > 0, "no timer fired during the outage: the scenario did not run"

    # History: every quiet pathway reached durable retries during the outage, which then added
    # no event at all; the whole outage added fewer events than 200, whatever its length.
    assert figures.raw["incidents_seen"] == QUIET_PATHWAYS
    assert figures.raw["durable_values"] == [0] * QUIET_PATHWAYS
    assert max(figures.raw["added_values"]) < 200


async def test_smtp_down_never_delays_an_action_and_every_email_arrives_once(topology: Topology, fleet: Fleet) -> None:
    """(b) SMTP stopped for 6 s while clients act and timers fire."""
    tracks = await fleet.start(TIMED_PATHWAYS + QUIET_PATHWAYS, TIMED)

    figures = await smtp_outage(fleet, outage=6, tracks=tracks, clients=6)
    assert_sound(figures)

    assert figures.raw["actions_during"] > 0 and figures.raw["mail_during"] > 0
    # Every request was answered at once and in full: no error, no "the pages will follow".
    assert set(figures.seen.statuses()) == {"200"}, figures.seen.lines()
    assert not any(RECORDED_DISPLAY_FOLLOWS in message for _, message in figures.seen.counts)


async def test_a_worker_killed_at_random_points_loses_and_duplicates_nothing(topology: Topology, fleet: Fleet) -> None:
    """(c) one worker killed with kill -9 three times (ten in the bench), restarted each time."""
    tracks = await fleet.start(TIMED_PATHWAYS + QUIET_PATHWAYS, TIMED)

    figures = await worker_kills(fleet, kills=3, tracks=tracks, clients=6, gap=(0.5, 3.0))
    check = assert_sound(figures)

    assert len(figures.raw["kills"]) == 3 and all(w.running for w in topology.workers)
    # An e-mail a killed relay held is sent once its lease expires; one SMTP had already accepted
    # is the documented exception (sent again, same Message-ID). Neither is lost.
    print(f"  e-mails held by a lease: {figures.catch_up.leased}; sent but not marked: {len(check.sent_unmarked)}")


async def test_temporal_killed_and_restarted_on_its_file_resumes_everything(topology: Topology, fleet: Fleet) -> None:
    """(d) the Temporal dev server killed (kill -9), down for 5 s, restarted on its SQLite file."""
    tracks = await fleet.start(TIMED_PATHWAYS + QUIET_PATHWAYS, TIMED)

    figures = await temporal_restart(fleet, down=5, tracks=tracks, clients=6)
    assert_sound(figures)

    assert all(w.running for w in topology.workers), "a worker did not survive Temporal's restart"
    # Whatever a user saw while it was down was an answer or a 503 in French: never a 500.
    for status, message in figures.seen.counts:
        assert status in ("200", "201") or UNAVAILABLE in message, (status, message)


async def test_the_ui_killed_mid_request_then_retried_with_the_same_key_acts_once(
    topology: Topology, fleet: Fleet
) -> None:
    """(e) the UI (all its uvicorn processes) killed with kill -9 in the middle of a start and of a
    completion: twice while Temporal waits for a worker (the request is recorded and admitted),
    twice at a random point; each request is then retried with the same Idempotency-Key."""
    tracks = await fleet.start(QUIET_PATHWAYS, QUIET)

    figures = await ui_kills(fleet, trials=4, tracks=tracks, seed=9)
    assert_sound(figures)

    cuts = figures.raw["cuts"]
    assert [(c.kind, c.point) for c in cuts] == [
        ("start", "waiting"),
        ("complete", "waiting"),
        ("start", "random"),
        ("complete", "random"),
    ]
    for cut in cuts:  # the retry got the answer, a third send the same one; one effect, never two
        assert cut.retry_status == (201 if cut.kind == "start" else 200), cut
        assert cut.same_answer and cut.effects == 1, cut
    # Cut while waiting, the first attempt got no answer at all: only the retry could tell.
    assert all(not c.first[:3].isdigit() for c in cuts if c.point == "waiting"), cuts
    assert all(w.running for w in topology.workers) and topology.ui.running


# --- The UI when the read model does not answer -----------------------------------------------


@pytest.fixture
async def unreachable_database() -> AsyncIterator[httpx.AsyncClient]:
    """The app on a read model nobody listens to (a free port): every query is refused."""
    engine = make_engine(f"postgresql://parcours@127.0.0.1:{free_port()}/parcours")
    app = create_app(engine, Settings())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    engine.dispose()


async def test_the_api_answers_503_in_french_when_the_read_model_is_down(
    unreachable_database: httpx.AsyncClient,
) -> None:
    response = await unreachable_database.post(
        "/api/auth/token", json={"email": "camille.martin@example.org", "password": "x"}
    )
    assert response.status_code == 503
    assert response.json() == {"detail": DATABASE_DOWN}
    assert response.headers["retry-after"].isdigit()


async def test_pages_answer_503_with_an_html_page_when_the_read_model_is_down(
    unreachable_database: httpx.AsyncClient,
) -> None:
    form = await unreachable_database.get("/connexion")  # the sign-in page itself needs no database
    match = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert form.status_code == 200 and match
    response = await unreachable_database.post(
        "/connexion", data={"email": "camille.martin@example.org", "password": "x", "csrf": match.group(1)}
    )
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert DATABASE_DOWN in response.text and "Traceback" not in response.text


def test_only_an_unreachable_database_is_a_503() -> None:
    """A refused statement (a constraint, a bug) stays an internal error: not "try again later"."""
    refused: Any = OperationalError("SELECT 1", {}, Exception("connection refused"))
    constraint: Any = IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert database_down(refused) and not database_down(constraint)
