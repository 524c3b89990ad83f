"""E-mails leave through the outbox relay, out of the workflows' path: an absent or slow SMTP
server never delays an update; several relays deliver each key once; a crash between SMTP's
acceptance and the marking resends with the same Message-ID; a commit applied twice writes the
read model and its e-mails once."""

from __future__ import annotations

import asyncio
import smtplib
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.headerregistry import HeaderRegistry
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.mailer import message_id
from activities.outbox import OutboxRelay, backoff
from activities.pathway_activities import PathwayActivities
from parcours.settings import ConfigError, Settings, load_settings
from store import models
from store import queries as q
from store.db import make_engine, session_scope
from tests.conftest import MailSink, Parcours, eventually, make_parcours, prepare_read_model
from tests.flows import flow
from worker.mail_capture import SmtpController, start_capture
from worker.runner import build_worker
from worker.temporal_server import free_port
from workflows.contract import CommitBatch, Notification

CAMILLE = "camille.martin@example.org"  # caseworker, departement74 (referent)
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


# --- Helpers ------------------------------------------------------------------------------


@contextmanager
def smtp_server(sink: MailSink) -> Iterator[MailSink]:
    controller = SmtpController(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class BlockingSink(MailSink):
    """A sink whose DATA waits until the test releases it (a slow SMTP server)."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.entered.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
        return await super().handle_DATA(server, session, envelope)


def rows(engine: Engine, pathway_id: str) -> list[models.Notification]:
    with session_scope(engine) as session:
        return list(session.exec(select(models.Notification).where(models.Notification.pathway_id == pathway_id)))


def record(engine: Engine, key: str, tag: str, *, status: str = "pending", v1_0: bool = False) -> None:
    """A recorded e-mail, as a commit writes it (its subject names `tag`, as e-mails name their
    pathway); `v1_0`: as a release 1.0 worker wrote it, without `next_attempt_at`."""
    now = q.now()  # the moment of recording: one pathway's e-mails leave in this order
    with session_scope(engine) as session:
        session.add(
            models.Notification(
                key=key,
                kind="task_assigned",
                pathway_id=tag,
                task_id=key.split(":")[0],
                recipients=["insertion@departement74.example.org"],
                subject=f"[Parcours] Nouvelle tâche : Essai (dossier {tag})",
                body="Bonjour,\n",
                status=status,
                created_at=now,
                next_attempt_at=None if v1_0 else now,
            )
        )


def counts(keys: list[str]) -> dict[str, int]:
    return {key: keys.count(key) for key in keys}


async def complete_accueil(parcours: Parcours, pathway_id: str) -> Any:
    return await parcours.service.complete_task(
        task_id=parcours.open_task(pathway_id, "accueil").id,
        actor=parcours.service.actor_for(CAMILLE),
        outcome="fait",
        data={"besoin": "emploi"},
    )


# --- The relay keeps SMTP out of the updates' path ----------------------------------------


async def test_an_absent_smtp_server_delays_the_emails_never_the_update(client: Client, database_url: str) -> None:
    sink = MailSink(port=free_port())  # nothing listens there yet
    parcours = make_parcours(client, sink, database_url)
    try:
        async with build_worker(client, engine=parcours.engine, settings=parcours.settings):
            parcours.publish(flow())
            pathway_id = await parcours.start("test_flow")
            result = await complete_accueil(parcours, pathway_id)
            assert "Accueil réalisé" in result.message
            assert {t.step_id for t in parcours.open_tasks(pathway_id)} == {"appui_referent", "appui_ft"}

            # Every e-mail is recorded and waits, with what went wrong.
            def waiting() -> list[models.Notification]:
                found = rows(parcours.engine, pathway_id)
                return found if len(found) == 3 and all(r.attempts > 0 and r.last_error for r in found) else []

            waiting_rows = await eventually(waiting, what="three e-mails waiting, each with its error")
            assert {r.status for r in waiting_rows} == {"pending"} and sink.messages == []

            with smtp_server(sink):
                expected = sorted(r.key for r in waiting_rows)
                await eventually(lambda: sorted(sink.keys(pathway_id)) == expected, what="the e-mails, once back")
                await eventually(
                    lambda: {r.status for r in rows(parcours.engine, pathway_id)} == {"sent"}, what="marked sent"
                )
                assert counts(sink.keys(pathway_id)) == dict.fromkeys(expected, 1)
    finally:
        parcours.engine.dispose()


async def test_a_slow_smtp_server_never_delays_an_update(client: Client, database_url: str) -> None:
    sink = BlockingSink(port=free_port())
    parcours = make_parcours(client, sink, database_url)
    try:
        with smtp_server(sink):
            try:
                async with build_worker(client, engine=parcours.engine, settings=parcours.settings):
                    parcours.publish(flow())
                    start = asyncio.create_task(parcours.start("test_flow"))
                    await eventually(sink.entered.is_set, what="the relay inside a blocked DATA")
                    await eventually(start.done, what="the start")
                    pathway_id = start.result()

                    update = asyncio.create_task(complete_accueil(parcours, pathway_id))
                    await eventually(update.done, what="the update, while SMTP is blocked")
                    assert sink.messages == []  # the server still holds the first e-mail
                    assert "Accueil réalisé" in update.result().message
                    assert {t.step_id for t in parcours.open_tasks(pathway_id)} == {"appui_referent", "appui_ft"}

                    sink.release.set()
                    await eventually(lambda: len(set(sink.keys(pathway_id))) == 3, what="the three e-mails")
                    assert sorted(counts(sink.keys(pathway_id)).values()) == [1, 1, 1]
            finally:
                sink.release.set()
    finally:
        parcours.engine.dispose()


async def test_a_commit_wakes_the_relay_of_its_process_at_once(
    parcours_without_worker: Parcours, client: Client
) -> None:
    parcours = parcours_without_worker
    lazy = parcours.settings.model_copy(update={"outbox_poll_seconds": 300.0})  # polling alone: minutes
    async with build_worker(client, engine=parcours.engine, settings=lazy):
        parcours.publish(flow())
        pathway_id = await parcours.start("test_flow")
        await eventually(lambda: len(parcours.mail.keys(pathway_id)) == 1, what="the first task's e-mail")
        await complete_accueil(parcours, pathway_id)
        await eventually(lambda: len(parcours.mail.keys(pathway_id)) == 3, what="the next tasks' e-mails")


# --- Several relays, a crash, the Message-ID ----------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_several_relays_deliver_each_key_exactly_once(
    database_url: str, mail_sink: MailSink, parcours_without_worker: Parcours
) -> None:
    tag = "P-RELAYS" + uuid.uuid4().hex[:6].upper()
    keys = [f"{tag}-{n}:g0:task_assigned:0" for n in range(36)]
    for key in keys:
        record(parcours_without_worker.engine, key, tag)
    engines = [make_engine(database_url) for _ in range(3)]  # three worker processes' pools
    relays = [OutboxRelay(engine, parcours_without_worker.settings) for engine in engines]
    running = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await eventually(lambda: len(set(mail_sink.keys(tag))) == len(keys), what="every e-mail")
        await eventually(lambda: {r.status for r in rows(engines[0], tag)} == {"sent"}, what="every e-mail marked sent")
        for relay in relays:
            relay.stop()
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        for engine in engines:
            engine.dispose()
    assert counts(mail_sink.keys(tag)) == dict.fromkeys(keys, 1)
    assert {r.attempts for r in rows(parcours_without_worker.engine, tag)} == {1}


async def test_a_crash_between_acceptance_and_marking_resends_with_the_same_message_id(
    parcours_without_worker: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    parcours = parcours_without_worker
    tag = "P-CRASH" + uuid.uuid4().hex[:6].upper()
    key = f"{tag}-1:g0:task_assigned:0"
    record(parcours.engine, key, tag)
    relay = OutboxRelay(parcours.engine, parcours.settings, lease_seconds=0.5)
    real_mark = relay._mark_sent
    crashes: list[tuple[Any, ...]] = []

    def mark_once_crashing(*args: Any) -> None:
        if not crashes:
            crashes.append(args)
            raise ConnectionError("le processus s'arrête ici")
        real_mark(*args)

    monkeypatch.setattr(relay, "_mark_sent", mark_once_crashing)

    async def resent() -> bool:
        return await relay.deliver_due() == 1

    try:
        assert await relay.deliver_due() == 1  # accepted by SMTP, then the marking fails
        assert [r.status for r in rows(parcours.engine, tag)] == ["pending"] and crashes
        await eventually(resent, what="the claim's lease expiring, then the resend")
        assert await relay.deliver_due() == 0
    finally:
        await relay.aclose()
    sent = parcours.mail.about(tag)
    assert [str(m["X-Parcours-Key"]) for m in sent] == [key, key]  # the documented exception: twice
    assert {str(m["Message-ID"]) for m in sent} == {message_id(key, parcours.settings.public_url)}
    assert [r.status for r in rows(parcours.engine, tag)] == ["sent"]


async def test_two_deliveries_of_one_key_carry_the_same_message_id(mail_sink: MailSink, tmp_path: Path) -> None:
    tag = "P-MSGID" + uuid.uuid4().hex[:6].upper()
    key, other = f"{tag}-1:g0:reminder:0", f"{tag}-2:g0:reminder:0"
    settings = Settings(smtp_host="127.0.0.1", smtp_port=mail_sink.port, base_url="https://parcours.example.fr/")
    for name in ("one", "two"):  # two read models, two relays, delivering the same key at different times
        url = f"sqlite:///{tmp_path / name / 'parcours.db'}"
        prepare_read_model(url)
        engine = make_engine(url)
        record(engine, key, tag)
        if name == "two":
            record(engine, other, tag)
        relay = OutboxRelay(engine, settings)
        try:
            assert await relay.deliver_due() == (1 if name == "one" else 2)
        finally:
            await relay.aclose()
            engine.dispose()
    ids = {(str(m["X-Parcours-Key"]), str(m["Message-ID"])) for m in mail_sink.about(tag)}
    assert ids == {
        (key, f"<{tag}-1.g0.reminder.0@parcours.example.fr>"),
        (other, f"<{tag}-2.g0.reminder.0@parcours.example.fr>"),
    }


def test_the_message_id_is_the_key_in_a_valid_header() -> None:
    keys = ["T-1:g0:reminder:0", "T-1.g0.reminder.0", "T-1::g0", ":T", "T:", "tâche 1", "T=3A"]
    ids = [message_id(k, "http://127.0.0.1:8000") for k in keys]
    assert ids[0] == "<T-1.g0.reminder.0@127.0.0.1>"
    assert len(set(ids)) == len(keys)  # never two keys on one Message-ID
    assert message_id(keys[0], "http://[::1]:8000") == "<T-1.g0.reminder.0@parcours.localhost>"
    for value in ids:
        header = HeaderRegistry()("Message-ID", value)
        assert not header.defects, (value, header.defects)


# --- What the relay sends, and when -------------------------------------------------------


async def test_rows_whose_rendering_failed_are_never_sent(parcours_without_worker: Parcours) -> None:
    parcours = parcours_without_worker
    tag = "P-FAILED" + uuid.uuid4().hex[:6].upper()
    record(parcours.engine, f"{tag}-1:g0:reminder:0", tag, status="failed")
    record(parcours.engine, f"{tag}-2:g0:reminder:0", tag)
    relay = OutboxRelay(parcours.engine, parcours.settings)
    try:
        assert await relay.deliver_due() == 1
        assert await relay.deliver_due() == 0
    finally:
        await relay.aclose()
    assert parcours.mail.keys(tag) == [f"{tag}-2:g0:reminder:0"]
    assert {r.key: r.status for r in rows(parcours.engine, tag)} == {
        f"{tag}-1:g0:reminder:0": "failed",
        f"{tag}-2:g0:reminder:0": "sent",
    }


async def test_a_pathway_s_emails_leave_in_the_order_they_were_recorded(
    parcours_without_worker: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    parcours = parcours_without_worker
    tag, other = ("P-ORDER" + uuid.uuid4().hex[:6].upper() for _ in range(2))
    kinds = ["task_assigned:0", "reminder:0", "overdue:0", "escalated:1"]  # the reverse of their keys' order
    for kind in kinds:
        record(parcours.engine, f"{tag}-1:g0:{kind}", tag)
        record(parcours.engine, f"{other}-1:g0:{kind}", other)
    relay = OutboxRelay(parcours.engine, parcours.settings)
    real_send, in_flight, overlaps = relay.mailer.send, set[str](), list[str]()

    async def watched_send(**message: Any) -> None:  # one pathway's e-mails: one at a time
        pathway_id = message["headers"]["X-Parcours-Key"].split("-1:")[0]
        overlaps.extend([pathway_id] if pathway_id in in_flight else [])
        in_flight.add(pathway_id)
        try:
            await asyncio.sleep(0)
            await real_send(**message)
        finally:
            in_flight.discard(pathway_id)

    monkeypatch.setattr(relay.mailer, "send", watched_send)
    try:
        while await relay.deliver_due():
            pass
    finally:
        await relay.aclose()
    for pathway_id in (tag, other):
        assert [k.split(":", 2)[2] for k in parcours.mail.keys(pathway_id)] == kinds
    assert overlaps == []


async def test_a_release_1_0_worker_s_email_is_taken_over_once_its_run_asks_again(
    parcours_without_worker: Parcours,
) -> None:
    parcours = parcours_without_worker
    tag = "P-LEGACY" + uuid.uuid4().hex[:6].upper()
    key = f"{tag}-1:g0:reminder:0"
    record(parcours.engine, key, tag, v1_0=True)  # a 1.0 worker is sending it, or SMTP refused it
    relay = OutboxRelay(parcours.engine, parcours.settings)
    try:
        assert await relay.deliver_due() == 0  # never raced with the 1.0 worker
        retry = Notification(
            key=key,
            kind="reminder",
            pathway_id=tag,
            item_id=f"{tag}-1",
            step_title="Essai",
            organisation_id="departement74",
            basin_id="annecien",
        )  # the 1.0 run retries it with send_notification, now on a new worker
        activities = PathwayActivities(parcours.engine, parcours.settings, outbox=relay)
        await ActivityEnvironment().run(activities.send_notification, retry)
        assert await relay.deliver_due() == 1
        await ActivityEnvironment().run(activities.send_notification, retry)  # retried again: already sent
        assert await relay.deliver_due() == 0
    finally:
        await relay.aclose()
    assert parcours.mail.keys(tag) == [key]


async def test_a_stopping_relay_finishes_its_send_and_gives_the_rest_back(parcours_without_worker: Parcours) -> None:
    parcours = parcours_without_worker
    sink = BlockingSink(port=free_port())
    tag = "P-STOP" + uuid.uuid4().hex[:6].upper()
    first, second = f"{tag}-1:g0:task_assigned:0", f"{tag}-1:g0:reminder:0"
    record(parcours.engine, first, tag)
    record(parcours.engine, second, tag)
    relay = OutboxRelay(parcours.engine, parcours.settings.model_copy(update={"smtp_port": sink.port}))
    with smtp_server(sink):
        running = asyncio.create_task(relay.run())
        try:
            await eventually(sink.entered.is_set, what="the first e-mail inside DATA")
            relay.stop()  # the worker stops while the relay holds both e-mails
            sink.release.set()
            await running
        finally:
            sink.release.set()
            running.cancel()
    assert sink.keys(tag) == [first]
    state = {r.key: (r.status, r.claimed_until) for r in rows(parcours.engine, tag)}
    assert state == {first: ("sent", None), second: ("pending", None)}  # free for another relay at once


def test_retries_back_off_from_seconds_to_ten_minutes() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert backoff(1000).total_seconds() == 600


def test_the_poll_interval_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCOURS_OUTBOX_POLL_SECONDS", "0")
    with pytest.raises(ConfigError, match="PARCOURS_OUTBOX_POLL_SECONDS.*entre 0,05 et 300"):
        load_settings()
    monkeypatch.setenv("PARCOURS_OUTBOX_POLL_SECONDS", "0.5")
    assert load_settings().outbox_poll_seconds == 0.5


async def test_the_dev_capture_receives_what_the_relay_sends(parcours_without_worker: Parcours) -> None:
    parcours = parcours_without_worker
    port = free_port()
    capture = start_capture(parcours.engine, port=port)
    tag = "P-CAPTURE" + uuid.uuid4().hex[:6].upper()
    record(parcours.engine, f"{tag}-1:g0:task_assigned:0", tag)
    relay = OutboxRelay(parcours.engine, parcours.settings.model_copy(update={"smtp_port": port}))
    try:
        assert await relay.deliver_due() == 1
    finally:
        await relay.aclose()
        capture.stop()
    with session_scope(parcours.engine) as session:
        captured = session.exec(select(models.CapturedEmail)).all()
    assert [c.subject for c in captured] == [f"[Parcours] Nouvelle tâche : Essai (dossier {tag})"]


async def test_a_connection_to_the_smtp_server_leaves_the_process_warning_filters_alone(
    mail_sink: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosmtpd swaps the process-wide warning filters to "error" when it must look a loop up; from
    the server's thread, that made a module imported meanwhile elsewhere fail (a CI run failed so)."""
    swaps: list[str] = []
    real_simplefilter = warnings.simplefilter
    monkeypatch.setattr(
        warnings, "simplefilter", lambda action, *a, **k: (swaps.append(action), real_simplefilter(action, *a, **k))
    )
    with smtplib.SMTP("127.0.0.1", mail_sink.port, timeout=10) as smtp:
        assert smtp.noop()[0] == 250
    assert swaps == []


# --- The commit, applied twice -----------------------------------------------------------


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read-model table."""
    with engine.connect() as connection:
        return {
            table.name: sorted(
                (tuple(str(v) for v in row) for row in connection.execute(table.select())), key=lambda r: r
            )
            for table in SQLModel.metadata.sorted_tables
        }


@BOTH
async def test_the_same_commit_twice_leaves_the_same_read_model_and_one_row_per_email(
    parcours: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[CommitBatch] = []
    real_write = PathwayActivities._write

    def recording(self: PathwayActivities, batch: CommitBatch) -> None:
        batches.append(batch)
        real_write(self, batch)

    monkeypatch.setattr(PathwayActivities, "_write", recording)
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    await complete_accueil(parcours, pathway_id)
    await eventually(
        lambda: (
            len(parcours.mail.keys(pathway_id)) == 3
            and {r.status for r in rows(parcours.engine, pathway_id)} == {"sent"}
        ),
        what="the three e-mails sent",
    )
    assert len(batches) >= 2 and sum(len(b.notifications) for b in batches) == 3
    before = snapshot(parcours.engine)

    # Temporal runs each batch again: once more in order, the last again, then the first, older
    # than what the read model holds (an attempt that timed out and committed late).
    activities, environment = PathwayActivities(parcours.engine, parcours.settings), ActivityEnvironment()
    for batch in [*batches, batches[-1], batches[0]]:
        assert await environment.run(activities.commit, batch) == []
    assert snapshot(parcours.engine) == before
    assert {t.step_id for t in parcours.open_tasks(pathway_id)} == {"appui_referent", "appui_ft"}
    assert counts(parcours.mail.keys(pathway_id)) == dict.fromkeys(parcours.mail.keys(pathway_id), 1)
