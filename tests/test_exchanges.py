"""Exchange sessions and cross-trainings (issue 12 §7): organised by a GTO lead in their basin or
by the direction; partners register themselves, employers through a one-time link; confirmation
and reminder e-mails through the outbox; the capacity held; attendance after the session; an
iCalendar export; the GTO agenda names the next GTO meeting. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import icalendar
import pytest
from sqlalchemy import update
from sqlmodel import select

from definitions.durations import PARIS, add_working_days, is_working_day
from parcours.presenters import aware
from services import exchanges
from services.errors import ServiceError
from store import models, retention
from store import queries as q
from store.db import session_scope
from tests.conftest import Parcours, Web, csrf_of, eventually

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

LEA = "lea.dupont@example.org"  # GTO lead, annecien
NICOLAS = "nicolas.blanc@example.org"  # GTO lead, arve_mont_blanc
HELENE = "helene.roche@example.org"  # direction
CAMILLE = "camille.martin@example.org"  # caseworker
SARAH = "sarah.benali@example.org"  # caseworker


def in_days(days: int) -> str:
    return (q.now().astimezone(PARIS).date() + timedelta(days=days)).isoformat()


def session_form(page: str, **values: str) -> dict[str, str]:
    token = re.search(r'name="request_id" value="([^"]+)"', page)
    return {
        "csrf": csrf_of(page),
        "request_id": token.group(1) if token else "",
        "kind": "employeurs",
        "title": "Petit-déjeuner employeurs de l'Albanais",
        "basin": "annecien",
        "day": in_days(10),
        "start": "08:30",
        "end": "10:00",
        "place": "Pépinière d'entreprises, Rumilly",
        "capacity": "2",
        "description": "Présentation des immersions.\nTémoignages.",
        **values,
    }


def rows_of(engine: Any, model: Any, *where: Any) -> list[Any]:
    with session_scope(engine) as session:
        return list(session.exec(select(model).where(*where)))


def rows(web: Web, model: Any, *where: Any) -> list[Any]:
    return rows_of(web.parcours.engine, model, *where)


def mails_to(web: Web, email: str, subject: str) -> list[Any]:
    return [m for m in web.parcours.mail.messages if email in str(m["To"]) and subject in str(m["Subject"])]


async def post_action(client: Any, session_id: str, action: str, **data: Any) -> Any:
    page = (await client.get(f"/rencontres/{session_id}")).text
    return await client.post(f"/rencontres/{session_id}/{action}", data={"csrf": csrf_of(page), **data})


async def plan(organiser: Any, **values: str) -> str:
    """A session planned through the form (`session_form`'s values, changed by `values`): its id."""
    form_page = (await organiser.get("/rencontres/nouvelle")).text
    created = await organiser.post("/rencontres/nouvelle", data=session_form(form_page, **values))
    return str(created.headers["location"].rsplit("/", 1)[-1])


async def link_sent_to(web: Web, employer: str) -> str:
    """The one-time link of the last invitation e-mailed to `employer`."""
    invitations = await eventually(lambda: mails_to(web, employer, "Invitation"), what="invitation")
    return str(re.findall(r"/rencontres/lien/[\w\-]+", invitations[-1].get_content())[-1])


@both_databases
async def test_a_session_is_planned_registered_to_by_partners_and_employers_and_its_attendance_recorded(
    web: Web,
) -> None:
    # Only an organiser plans, in their own basin; a refusal writes nothing.
    camille = await web.signed_in(CAMILLE)
    assert (await camille.get("/rencontres/nouvelle")).status_code == 303
    page = (await camille.get("/rencontres")).text
    refused = await camille.post("/rencontres/nouvelle", data=session_form(page))
    assert refused.status_code == 403 and "animateurs de son GTO" in unescape(refused.text)
    lea = await web.signed_in(LEA)
    form_page = (await lea.get("/rencontres/nouvelle")).text
    other_basin = await lea.post("/rencontres/nouvelle", data=session_form(form_page, basin="genevois"))
    assert other_basin.status_code == 403
    wrong = await lea.post(
        "/rencontres/nouvelle",
        data=session_form(form_page, day=in_days(-1), end="08:00", capacity="0", title=""),
    )
    text = unescape(wrong.text)
    assert wrong.status_code == 422
    for message in (
        "Intitulé : à renseigner.",
        "Date : la rencontre doit être à venir.",
        "Heure de fin : après l'heure de début.",
        "Nombre de places : un nombre entier de 1 à 500.",
    ):
        assert message in text
    assert rows(web, models.ExchangeSession) == []

    # Planned once, even when the form is sent twice.
    form = session_form(form_page)
    created = await lea.post("/rencontres/nouvelle", data=form)
    again = await lea.post("/rencontres/nouvelle", data=form)
    assert created.status_code == again.status_code == 303
    assert created.headers["location"] == again.headers["location"]
    (row,) = rows(web, models.ExchangeSession)
    assert aware(row.starts_at).astimezone(PARIS).strftime("%H:%M") == "08:30" and row.capacity == 2

    # A partner registers (twice: still one registration) and is confirmed through the outbox.
    assert (await post_action(camille, row.id, "inscription")).status_code == 303
    twice = await post_action(camille, row.id, "inscription")
    assert "Vous étiez déjà inscrit" in unescape((await camille.get(twice.headers["location"])).text)
    assert len(rows(web, models.ExchangeRegistration, models.ExchangeRegistration.session_id == row.id)) == 1
    await eventually(lambda: mails_to(web, CAMILLE, f"Inscription confirmée : {row.title}"), what="confirmation")
    (reminder,) = rows(web, models.Notification, models.Notification.kind == "exchange_rappel")
    due = aware(reminder.next_attempt_at).astimezone(PARIS)
    assert (due.hour, due.minute) == (9, 0) and is_working_day(due.date())
    assert due.date() < aware(row.starts_at).astimezone(PARIS).date() and reminder.status == "pending"

    # An employer, invited by e-mail, registers through its one-time link.
    employer = f"rh-{uuid.uuid4().hex[:8]}@boulangerie.example.org"
    assert (await post_action(lea, row.id, "invitation", email="pas-une-adresse")).status_code == 303
    invite_page = (await lea.get(f"/rencontres/{row.id}")).text
    token = re.search(r'name="request_id" value="([^"]+)"', invite_page).group(1)  # type: ignore[union-attr]
    invite = {"csrf": csrf_of(invite_page), "email": employer, "request_id": token}
    assert (await lea.post(f"/rencontres/{row.id}/invitation", data=invite)).status_code == 303
    again = await lea.post(f"/rencontres/{row.id}/invitation", data=invite)  # sent twice: one link, one e-mail
    assert "aucun second lien" in unescape((await lea.get(again.headers["location"])).text)
    invitations = await eventually(lambda: mails_to(web, employer, "Invitation"), what="invitation")
    assert len(invitations) == 1
    assert len(rows(web, models.AccessLink, models.AccessLink.sent_to == employer)) == 1
    link = await link_sent_to(web, employer)
    async with web.client() as outside:
        opened = await outside.get(link)
        assert opened.status_code == 200 and employer in opened.text
        missing = await outside.post(
            link, data={"csrf": csrf_of(opened.text), "name": "", "organisation": "Boulangerie Favre"}
        )
        assert missing.status_code == 422 and "Nom : à renseigner." in unescape(missing.text)
        done = await outside.post(
            link, data={"csrf": csrf_of(opened.text), "name": "Anne Favre", "organisation": "Boulangerie Favre"}
        )
        assert done.status_code == 200 and "votre inscription est enregistrée" in unescape(done.text)
        replay = await outside.post(
            link, data={"csrf": csrf_of(opened.text), "name": "Anne Favre", "organisation": "X"}
        )
        assert replay.status_code == 409 and "déjà servi" in unescape(replay.text)
        calendar = await outside.get(f"{link}/rencontre.ics")
        assert calendar.headers["content-type"].startswith("text/calendar")
        (event,) = icalendar.Calendar.from_ical(calendar.content).walk("VEVENT")
        assert str(event["SUMMARY"]) == f"Rencontre employeurs : {row.title}"
    await eventually(lambda: mails_to(web, employer, "Inscription confirmée"), what="employer's confirmation")

    # The capacity holds; a place freed is taken again; the withdrawn reminder is not sent.
    sarah = await web.signed_in(SARAH)
    full = await post_action(sarah, row.id, "inscription")
    assert "complète (2 places)" in unescape(str((await sarah.get(full.headers["location"])).text))
    assert (await post_action(camille, row.id, "desinscription")).status_code == 303
    assert [n.status for n in rows(web, models.Notification, models.Notification.key == reminder.key)] == ["withdrawn"]
    await post_action(sarah, row.id, "inscription")
    registered = rows(web, models.ExchangeRegistration, models.ExchangeRegistration.cancelled_at.is_(None))  # type: ignore[union-attr]
    assert sorted(r.email for r in registered) == sorted([employer, SARAH])

    # Who registered is the organisers' to see; a registrant sees the count and their own.
    sarah_view = unescape((await sarah.get(f"/rencontres/{row.id}")).text)
    assert "2 inscrit(s) sur 2" in sarah_view and "Vous êtes inscrit" in sarah_view and employer not in sarah_view
    assert employer in (await lea.get(f"/rencontres/{row.id}")).text
    own = await sarah.get(f"/rencontres/{row.id}.ics")
    (event,) = icalendar.Calendar.from_ical(own.content).walk("VEVENT")
    assert str(event["UID"]).startswith(f"{row.id}@") and str(event["STATUS"]) == "CONFIRMED"

    # Attendance once the session has begun.
    present = {r.id for r in registered if r.email == SARAH}
    early = await post_action(lea, row.id, "presences", present=list(present))
    assert "une fois la rencontre commencée" in unescape((await lea.get(early.headers["location"])).text)
    with session_scope(web.parcours.engine) as session:
        session.execute(
            update(models.ExchangeSession)
            .where(models.ExchangeSession.id == row.id)  # type: ignore[arg-type]
            .values(starts_at=q.now() - timedelta(hours=2), ends_at=q.now() - timedelta(hours=1))
        )
    assert (await post_action(sarah, row.id, "presences", present=list(present))).status_code == 303
    assert all(r.attended is None for r in rows(web, models.ExchangeRegistration))  # Sarah may not
    await post_action(lea, row.id, "presences", present=list(present))
    attended = {
        r.email: r.attended
        for r in rows(web, models.ExchangeRegistration, models.ExchangeRegistration.cancelled_at.is_(None))
    }  # type: ignore[union-attr]
    assert attended == {SARAH: True, employer: False}
    audited = [a.action for a in rows(web, models.AuditEvent, models.AuditEvent.action.startswith("exchange_"))]  # type: ignore[attr-defined]
    for action in (
        "exchange_session_created",
        "exchange_registered",
        "exchange_registered_by_link",
        "exchange_unregistered",
        "exchange_attendance_recorded",
    ):
        assert action in audited


@both_databases
async def test_a_cancelled_session_withdraws_its_reminders_tells_its_registrants_and_its_calendar(web: Web) -> None:
    helene = await web.signed_in(HELENE)  # the direction organises in every basin
    session_id = await plan(
        helene, kind="formation_croisee", basin="chablais", title="Formation croisée RSA", capacity="20"
    )
    camille = await web.signed_in(CAMILLE)
    await post_action(camille, session_id, "inscription")
    employer = f"rh-{uuid.uuid4().hex[:8]}@scierie.example.org"
    await post_action(helene, session_id, "invitation", email=employer)
    link = await link_sent_to(web, employer)
    refused = await post_action(camille, session_id, "annulation", confirme="oui")
    assert rows(web, models.ExchangeSession)[0].cancelled_at is None and refused.status_code == 303
    unconfirmed = await post_action(helene, session_id, "annulation")
    assert "cochez la case" in unescape((await helene.get(unconfirmed.headers["location"])).text)
    assert rows(web, models.ExchangeSession)[0].cancelled_at is None
    assert (await post_action(helene, session_id, "annulation", confirme="oui")).status_code == 303

    assert [n.status for n in rows(web, models.Notification, models.Notification.kind == "exchange_rappel")] == [
        "withdrawn"
    ]
    await eventually(lambda: mails_to(web, CAMILLE, "Rencontre annulée : Formation croisée RSA"), what="cancellation")
    async with web.client() as outside:  # the employer's link now says the session is off
        closed = await outside.get(link)
        assert closed.status_code == 409 and "annulée" in unescape(closed.text) and 'name="name"' not in closed.text
    assert (await camille.get("/rencontres.ics", params={"bassin": "nulle-part"})).status_code == 404
    late = await post_action(await web.signed_in(SARAH), session_id, "inscription")
    assert late.status_code == 303 and len(rows(web, models.ExchangeRegistration)) == 1
    calendar = await camille.get("/rencontres.ics", params={"bassin": "chablais"})
    (event,) = icalendar.Calendar.from_ical(calendar.content).walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED" and str(event["LOCATION"]) == "Pépinière d'entreprises, Rumilly"
    assert aware(event.decoded("DTSTART")).astimezone(PARIS).strftime("%H:%M") == "08:30"


@both_databases
async def test_a_session_corrected_tells_its_registrants_and_moves_their_reminders(web: Web) -> None:
    lea = await web.signed_in(LEA)
    session_id = await plan(lea, capacity="20")
    camille = await web.signed_in(CAMILLE)
    await post_action(camille, session_id, "inscription")
    employer = f"rh-{uuid.uuid4().hex[:8]}@fromagerie.example.org"
    await post_action(lea, session_id, "invitation", email=employer)
    link = await link_sent_to(web, employer)
    async with web.client() as outside:
        opened = await outside.get(link)
        data = {"csrf": csrf_of(opened.text), "name": "Luc Mollard", "organisation": "Fromagerie Mollard"}
        assert (await outside.post(link, data=data)).status_code == 200
    await eventually(lambda: mails_to(web, employer, "Inscription confirmée"), what="employer's confirmation")
    first_reminders = {n.key for n in rows(web, models.Notification, models.Notification.kind == "exchange_rappel")}
    assert len(first_reminders) == 2

    # Only an organiser corrects a session; nothing written otherwise.
    assert (await camille.get(f"/rencontres/{session_id}/modifier")).status_code == 303
    page = (await camille.get(f"/rencontres/{session_id}")).text
    assert f"/rencontres/{session_id}/modifier" not in page
    refused = await camille.post(
        f"/rencontres/{session_id}/modifier", data=session_form(page, place="Chez Camille", title="Autre")
    )
    assert (
        refused.status_code == 303 and rows(web, models.ExchangeSession)[0].place == "Pépinière d'entreprises, Rumilly"
    )

    # The form comes filled in; the places never fall below the registrations.
    assert f"/rencontres/{session_id}/modifier" in (await lea.get(f"/rencontres/{session_id}")).text
    edit_page = (await lea.get(f"/rencontres/{session_id}/modifier")).text
    assert f'value="{in_days(10)}"' in edit_page and 'value="08:30"' in edit_page and "Rumilly" in edit_page
    too_few = await lea.post(f"/rencontres/{session_id}/modifier", data=session_form(edit_page, capacity="1"))
    assert too_few.status_code == 422 and "au moins 2, le nombre d'inscrits" in unescape(too_few.text)
    assert rows(web, models.ExchangeSession)[0].revision == 0

    # A new date and place: both registrants are told, their reminders move to the new eve.
    moved = session_form(
        edit_page, day=in_days(20), start="14:00", end="16:00", place="Mairie de Rumilly", capacity="20"
    )
    done = await lea.post(f"/rencontres/{session_id}/modifier", data=moved)
    said = unescape((await lea.get(done.headers["location"])).text)
    assert "Rencontre modifiée (date et heure de début, heure de fin, lieu) ; 2 inscrit(s) prévenu(s)" in said
    (row,) = rows(web, models.ExchangeSession)
    assert row.revision == 1 and row.place == "Mairie de Rumilly"
    told = await eventually(lambda: mails_to(web, CAMILLE, "Rencontre modifiée"), what="change e-mail")
    assert "Mairie de Rumilly" in told[-1].get_content() and "14 h 00" in told[-1].get_content()
    employer_told = await eventually(lambda: mails_to(web, employer, "Rencontre modifiée"), what="employer's")
    assert f"{link}/rencontre.ics" in employer_told[-1].get_content()  # their own calendar link, kept
    reminders = rows(web, models.Notification, models.Notification.kind == "exchange_rappel")
    assert {n.key: n.status for n in reminders if n.key in first_reminders} == dict.fromkeys(
        first_reminders, "withdrawn"
    )
    moved_reminders = [n for n in reminders if n.key not in first_reminders]
    assert len(moved_reminders) == 2 and all(n.status == "pending" for n in moved_reminders)
    for reminder in moved_reminders:
        due = aware(reminder.next_attempt_at).astimezone(PARIS)
        assert (due.hour, due.minute) == (9, 0) and is_working_day(due.date())
        assert due.date() == add_working_days(aware(row.starts_at).astimezone(PARIS), -1).date()
    calendar = await camille.get(f"/rencontres/{session_id}.ics")
    (event,) = icalendar.Calendar.from_ical(calendar.content).walk("VEVENT")
    assert int(event["SEQUENCE"]) == 1 and str(event["LOCATION"]) == "Mairie de Rumilly"
    assert aware(event.decoded("DTSTART")).astimezone(PARIS).strftime("%H:%M") == "14:00"

    # Sent again: nothing changes, nobody is e-mailed twice. The programme alone: nobody is.
    again = await lea.post(f"/rencontres/{session_id}/modifier", data=moved)
    assert "Rien n'a changé" in unescape((await lea.get(again.headers["location"])).text)
    programme = await lea.post(f"/rencontres/{session_id}/modifier", data={**moved, "description": "Visite."})
    assert "Rencontre modifiée (programme)." in unescape((await lea.get(programme.headers["location"])).text)
    assert rows(web, models.ExchangeSession)[0].revision == 2
    assert len(rows(web, models.Notification, models.Notification.kind == "exchange_modification")) == 2
    changes = rows(web, models.AuditEvent, models.AuditEvent.action == "exchange_session_changed")
    assert sorted(len(a.detail["changed"]) for a in changes) == [1, 3]


@both_databases
async def test_the_gto_agenda_names_the_next_gto_meeting(web: Web) -> None:
    nicolas = await web.signed_in(NICOLAS)
    assert "Aucune réunion du GTO n'est programmée" in unescape((await nicolas.get("/gto/ordre-du-jour")).text)
    form_page = (await nicolas.get("/rencontres/nouvelle?type=gto")).text
    for title, day in (("GTO de janvier", in_days(40)), ("GTO de décembre", in_days(12))):
        await nicolas.post(
            "/rencontres/nouvelle",
            data=session_form(
                (await nicolas.get("/rencontres/nouvelle?type=gto")).text,
                kind="gto",
                basin="arve_mont_blanc",
                title=title,
                day=day,
            ),
        )
    assert form_page
    # A pathway of the basin with no progress for weeks, not escalated: on the agenda too.
    stalled = await web.parcours.start("rsa_socio_pro", basin="arve_mont_blanc")
    with session_scope(web.parcours.engine) as session:
        session.execute(
            update(models.Pathway)
            .where(models.Pathway.id == stalled)  # type: ignore[arg-type]
            .values(last_progress_at=q.now() - timedelta(days=30))
        )
    agenda = unescape((await nicolas.get("/gto/ordre-du-jour")).text)
    meeting = re.search(r'id="agenda-meeting">(.*?)</p>', agenda, re.S).group(1)  # type: ignore[union-attr]
    assert "GTO de décembre" in meeting and "GTO de janvier" not in meeting
    others = agenda.split('id="ordre-du-jour-bloques"')[1].split("</table>")[0]
    assert stalled in others and "sans avancée" in others and "Alex" not in agenda
    exported = (await nicolas.get("/gto/ordre-du-jour.csv")).content.decode("utf-8-sig")
    assert f"{stalled};" in exported and "bloqué (sans avancée)" in exported and "Alex" not in exported
    (december,) = rows(web, models.ExchangeSession, models.ExchangeSession.title == "GTO de décembre")
    page = unescape((await nicolas.get(f"/rencontres/{december.id}")).text)
    assert 'id="exchange-agenda"' in page and "escalade(s) à décider" in page
    # A caseworker sees the meeting, not the basin's agenda.
    assert 'id="exchange-agenda"' not in (await (await web.signed_in(CAMILLE)).get(f"/rencontres/{december.id}")).text


async def test_registrants_are_anonymised_a_year_after_the_session(web: Web) -> None:
    engine = web.parcours.engine
    lea = q.get_user_by_email(engine, email=LEA)
    assert lea is not None
    entry = exchanges.SessionEntry("gto", "GTO", "annecien", in_days(3), "09:00", "11:00", "Annecy", 10)
    row = exchanges.create(engine, lea, entry)
    registrant = exchanges.Registrant("Léa Dupont", LEA, "SPIE", user_id=lea.id)
    exchanges.register(engine, row.id, registrant, public_url="http://x", viewer=lea)
    assert retention.expired_registrations(engine) == []
    with session_scope(engine) as session:
        session.execute(
            update(models.ExchangeSession)
            .where(models.ExchangeSession.id == row.id)  # type: ignore[arg-type]
            .values(starts_at=q.now() - timedelta(days=367), ends_at=q.now() - timedelta(days=366))
        )
    expired = retention.expired_registrations(engine)
    assert [n.recipients for n in rows(web, models.Notification)] == [[LEA], [LEA]]  # confirmation, reminder
    assert retention.anonymise_registrations(engine, registration_ids=expired) == 1
    assert [n.recipients for n in rows(web, models.Notification)] == [[], []]
    assert [a.action for a in rows(web, models.AuditEvent, models.AuditEvent.action.endswith("_anonymised"))] == [  # type: ignore[attr-defined]
        "exchange_registration_anonymised"
    ]
    (kept,) = rows(web, models.ExchangeRegistration)
    assert (kept.name, kept.email, kept.user_id, kept.organisation) == (
        "Inscrit anonymisé",
        f"anonyme:{kept.id}",
        None,
        "SPIE",
    )
    assert retention.expired_registrations(engine) == []


@pytest.mark.parametrize(
    ("starts", "reminded"),
    [
        (datetime(2026, 12, 7, 8, 30, tzinfo=PARIS), datetime(2026, 12, 4, 9, 0, tzinfo=PARIS)),  # Monday -> Friday
        (datetime(2027, 3, 30, 14, 0, tzinfo=PARIS), datetime(2027, 3, 26, 9, 0, tzinfo=PARIS)),  # after Easter Monday
        (
            datetime(2026, 12, 3, 10, 0, tzinfo=PARIS),
            datetime(2026, 12, 2, 9, 0, tzinfo=PARIS),
        ),  # Thursday -> Wednesday
    ],
)
def test_registrants_are_reminded_at_nine_the_working_day_before(starts: datetime, reminded: datetime) -> None:
    row = models.ExchangeSession(
        id="r",
        kind="gto",
        title="t",
        basin_id="b",
        starts_at=starts.astimezone(UTC),
        ends_at=starts.astimezone(UTC) + timedelta(hours=1),
        place="p",
        capacity=1,
        created_by="u",
    )
    assert exchanges.reminder_moment(row) == reminded


def test_the_demo_plans_the_annecien_gto_meeting_and_an_employer_breakfast(
    parcours_without_worker: Parcours,
) -> None:
    from worker.demo import seed_demo_sessions

    engine = parcours_without_worker.engine
    seed_demo_sessions(engine)
    meeting = exchanges.next_gto_meeting(engine, "annecien")
    assert meeting is not None and meeting.session.title == "GTO du bassin annécien"
    planned = {r.kind: aware(r.starts_at).astimezone(PARIS) for r in rows_of(engine, models.ExchangeSession)}
    assert set(planned) == {"gto", "employeurs"}
    assert all(is_working_day(when.date()) and when > q.now() for when in planned.values())


@both_databases
def test_the_last_place_is_given_once_to_registrations_at_the_same_moment(
    parcours_without_worker: Parcours,
) -> None:
    engine = parcours_without_worker.engine
    lea = q.get_user_by_email(engine, email=LEA)
    assert lea is not None
    registrants = [exchanges.Registrant(f"Pro {i}", f"pro{i}@example.org", "Partenaire") for i in range(4)]
    for attempt in range(5):
        entry = exchanges.SessionEntry(
            "echange", f"Séance {attempt}", "annecien", in_days(5), "09:00", "10:00", "Annecy", 1
        )
        row = exchanges.create(engine, lea, entry)
        barrier = threading.Barrier(len(registrants))

        def register(
            registrant: exchanges.Registrant, session_id: str = row.id, barrier: threading.Barrier = barrier
        ) -> str:
            barrier.wait()
            try:
                exchanges.register(engine, session_id, registrant, public_url="http://x")
            except ServiceError as error:
                return error.message
            return "inscrit"

        with ThreadPoolExecutor(len(registrants)) as pool:
            answers = list(pool.map(register, registrants))
        assert answers.count("inscrit") == 1, answers
        assert all("complète" in a for a in answers if a != "inscrit"), answers
        assert len(rows_of(engine, models.ExchangeRegistration, models.ExchangeRegistration.session_id == row.id)) == 1


@both_databases
def test_an_invitation_sent_twice_at_the_same_moment_makes_one_link(
    parcours_without_worker: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double click: both submissions pass the request log's check before either has written."""
    engine = parcours_without_worker.engine
    lea = q.get_user_by_email(engine, email=LEA)
    assert lea is not None
    entry = exchanges.SessionEntry(
        "employeurs", "Petit-déjeuner", "annecien", in_days(5), "08:30", "10:00", "Annecy", 20
    )
    row = exchanges.create(engine, lea, entry)
    both_checked = threading.Barrier(2)
    open_request = exchanges.open_request

    def opened_together(*args: Any, **kwargs: Any) -> Any:
        request = open_request(*args, **kwargs)
        both_checked.wait(timeout=10)
        return request

    monkeypatch.setattr(exchanges, "open_request", opened_together)
    key = str(uuid.uuid4())

    def invite(_: int) -> bool:
        invitation = exchanges.invite_employer(
            engine, lea, row.id, "patronne@example.org", public_url="http://x", request_id=key
        )
        return invitation is not None

    with ThreadPoolExecutor(2) as pool:
        sent = list(pool.map(invite, range(2)))
    assert sorted(sent) == [False, True]
    assert len(rows_of(engine, models.AccessLink, models.AccessLink.subject_id == row.id)) == 1


@both_databases
async def test_the_api_plans_lists_corrects_registers_and_cancels_under_the_pages_rules(web: Web) -> None:
    lea, camille, nicolas = await web.api(LEA), await web.api(CAMILLE), await web.api(NICOLAS)
    body = {
        "kind": "formation_croisee",
        "title": "Formation croisée RSA et emploi",
        "basin": "annecien",
        "day": in_days(12),
        "start": "09:00",
        "end": "12:00",
        "place": "Maison de l'emploi, Annecy",
        "capacity": 1,
    }
    # The pages' rules: an organiser of the basin only, every field checked, in French.
    refused = await camille.post("/api/sessions", json=body)
    assert refused.status_code == 403 and "animateurs de son GTO" in refused.json()["detail"]
    assert (await nicolas.post("/api/sessions", json=body)).status_code == 403  # another basin
    wrong = await lea.post("/api/sessions", json={**body, "end": "08:00", "day": "demain"})
    assert wrong.status_code == 422 and set(wrong.json()["fields"]) == {"day"}
    assert rows(web, models.ExchangeSession) == []
    key = {"Idempotency-Key": str(uuid.uuid4())}
    created = await lea.post("/api/sessions", json=body, headers=key)
    again = await lea.post("/api/sessions", json=body, headers=key)
    assert created.status_code == again.status_code == 201 and created.json()["id"] == again.json()["id"]
    session = created.json()
    assert session["starts_at"].endswith(("Z", "+00:00")) and session["registrations"] == []
    assert len(rows(web, models.ExchangeSession)) == 1

    # Registering: 201, then 200 with the same registration; the last place is given once.
    first = await camille.post(f"/api/sessions/{session['id']}/registration")
    twice = await camille.post(f"/api/sessions/{session['id']}/registration")
    assert (first.status_code, twice.status_code) == (201, 200) and first.json()["id"] == twice.json()["id"]
    sarah = await web.api(SARAH)
    full = await sarah.post(f"/api/sessions/{session['id']}/registration")
    assert full.status_code == 409 and "complète" in full.json()["detail"]
    listed = (await camille.get("/api/sessions", params={"basin": "annecien"})).json()
    (mine,) = [s for s in listed["items"] if s["id"] == session["id"]]
    assert mine["registered"] == 1 and mine["mine"] is True
    # The contacts are the organisers' to read.
    assert (await camille.get(f"/api/sessions/{session['id']}")).json()["registrations"] is None
    (registration,) = (await lea.get(f"/api/sessions/{session['id']}")).json()["registrations"]
    assert registration["email"] == CAMILLE and registration["employer"] is False

    # Corrected by its organiser: the registrant is told; the same values again change nothing.
    moved = {**body, "capacity": 3, "place": "Pôle emploi, Seynod"}
    assert (await camille.put(f"/api/sessions/{session['id']}", json=moved)).status_code == 403
    changed = (await lea.put(f"/api/sessions/{session['id']}", json=moved)).json()
    assert changed["changes"] == ["lieu", "nombre de places"] and changed["told"] == 1
    assert changed["session"]["revision"] == 1
    assert (await lea.put(f"/api/sessions/{session['id']}", json=moved)).json()["changes"] == []
    await eventually(lambda: mails_to(web, CAMILLE, "Rencontre modifiée : Formation croisée RSA"), what="change")

    # Attendance waits for the session; withdrawal and cancellation.
    early = await lea.post(f"/api/sessions/{session['id']}/attendance", json={"present": [registration["id"]]})
    assert early.status_code == 409
    withdrawn = await camille.delete(f"/api/sessions/{session['id']}/registration")
    assert withdrawn.status_code == 200 and withdrawn.json()["cancelled_at"] is not None
    assert (await camille.post(f"/api/sessions/{session['id']}/cancel")).status_code == 403
    cancelled = await lea.post(f"/api/sessions/{session['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled_at"] is not None
    assert (await lea.get("/api/sessions/rencontre-inconnue")).status_code == 404
    for client in (lea, camille, nicolas, sarah):
        await client.aclose()
