"""The caseworkers' lists under the need-to-know rule of the detail pages (closed pathways stay
listed for those who followed them at closing, until anonymised), and the length limits of what
users send: oversized forms refused in French with nothing stored, refusals that never echo an
oversized value, nothing oversized sent to the workflow."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import func, select

from services.errors import ServiceError
from services.pathways import check_extension
from store import models, views
from store.db import session_scope
from store.retention import anonymise
from tests.conftest import Parcours, Web, csrf_of
from tests.flows import flow

CAMILLE = "camille.martin@example.org"  # departement74: referent
JULIEN = "julien.roux@example.org"  # ft_annecy
SARAH = "sarah.benali@example.org"  # ml_annecy


def count(parcours: Parcours, model: Any) -> int:
    with session_scope(parcours.engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


async def post(client: Any, url: str, data: dict[str, Any], *, csrf_from: str) -> Any:
    html = (await client.get(csrf_from)).text
    return await client.post(url, data={"csrf": csrf_of(html), **data})


async def listed(client: Any, query: str = "") -> set[str]:
    response = await client.get(f"/api/pathways?size=200{query}")
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)  # the rule is SQL
async def test_closed_pathways_stay_listed_for_who_followed_them_at_closing_until_anonymised(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    camille = parcours.service.actor_for(CAMILLE)
    closed, still_open = await parcours.start("test_flow"), await parcours.start("test_flow")
    accueil = parcours.open_task(closed, "accueil").id
    # The Mission Locale follows, then hands over to France Travail before the pathway closes.
    await parcours.service.reassign_task(task_id=accueil, actor=camille, organisation_id="ml_annecy", reason="Jeune.")
    await parcours.service.reassign_task(
        task_id=accueil, actor=parcours.service.actor_for(SARAH), organisation_id="ft_annecy", reason="Inscription."
    )
    await parcours.service.close(pathway_id=closed, actor=camille, exit_reason="emploi_durable")
    assert parcours.pathway(closed).status == "closed"

    julien_api, sarah_api, camille_api = await web.api(JULIEN), await web.api(SARAH), await web.api(CAMILLE)
    # France Travail (in the group at closing) and the referent list it; the Mission Locale does not.
    assert closed in await listed(julien_api) and closed in await listed(julien_api, "&status=closed")
    assert closed not in await listed(julien_api, "&status=open")
    assert {closed, still_open} <= await listed(camille_api)
    assert await listed(camille_api, "&status=closed") >= {closed} and still_open not in await listed(
        camille_api, "&status=closed"
    )
    assert still_open in await listed(camille_api, "&status=open") and closed not in await listed(
        camille_api, "&status=open"
    )
    assert closed not in await listed(sarah_api)
    # The lists and the detail say the same thing.
    assert (await julien_api.get(f"/api/pathways/{closed}")).status_code == 200
    assert (await sarah_api.get(f"/api/pathways/{closed}")).status_code == 403

    julien_page, sarah_page = await web.signed_in(JULIEN), await web.signed_in(SARAH)
    html = (await julien_page.get("/parcours?statut=closed")).text
    assert f"/parcours/{closed}" in html and "Clos" in html
    assert f"/parcours/{closed}" not in (await julien_page.get("/parcours?statut=open")).text
    assert f"/parcours/{closed}" not in (await sarah_page.get("/parcours")).text

    # Once the person is anonymised (retention), the closed pathway leaves every list.
    anonymise(parcours.engine, person_ids=[parcours.pathway(closed).person_id])
    assert closed not in await listed(julien_api) and closed not in await listed(camille_api)
    assert still_open in await listed(camille_api)
    assert f"/parcours/{closed}" not in (await julien_page.get("/parcours?statut=closed")).text
    assert (await julien_api.get(f"/api/pathways/{closed}")).status_code == 403
    for client in (julien_api, sarah_api, camille_api, julien_page, sarah_page):
        await client.aclose()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_a_large_organisation_s_list_walks_newest_first_and_counts_up_to_a_cap(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An organisation in many follow-up groups (a Département) gets the same pages, under the
    same need-to-know rule, by a walk of the pathways newest first, its count capped."""
    parcours = web.parcours
    parcours.publish(flow())
    started = [await parcours.start("test_flow") for _ in range(4)]
    camille_api, sarah_api = await web.api(CAMILLE), await web.api(SARAH)

    async def pages(client: Any) -> tuple[list[str], list[dict[str, Any]]]:
        answers = [(await client.get(f"/api/pathways?size=2&page={n}")).json() for n in (1, 2)]
        return [item["id"] for answer in answers for item in answer["items"]], answers

    found, answers = await pages(camille_api)
    assert found == started[::-1]  # newest first
    assert [(a["total"], a["pages"], a["total_capped"]) for a in answers] == [(4, 2, False)] * 2

    monkeypatch.setattr(views, "WALK_FROM", 0)  # every organisation walks
    monkeypatch.setattr(views, "COUNT_CAP", 3)
    walked, answers = await pages(camille_api)
    assert walked == found
    assert [(a["total"], a["pages"], a["total_capped"]) for a in answers] == [(3, 2, True)] * 2
    assert set(started).isdisjoint(await listed(sarah_api))  # the Mission Locale follows none of them
    page = await web.signed_in(CAMILLE)
    assert "Plus de 3 parcours : précisez les filtres" in (await page.get("/parcours")).text
    monkeypatch.setattr(views, "COUNT_CAP", 4)
    assert "4 parcours" in (await page.get("/parcours")).text and "Plus de" not in (await page.get("/parcours")).text
    for client in (camille_api, sarah_api, page):
        await client.aclose()


async def test_oversized_form_values_are_refused_in_french_and_nothing_is_stored(web: Web) -> None:
    parcours = web.parcours
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    task = parcours.open_task(pathway_id, "accueil")
    notes, persons = count(parcours, models.Note), count(parcours, models.Person)
    client = await web.signed_in(CAMILLE)

    response = await post(
        client, f"/parcours/{pathway_id}/notes", {"note": "n" * 2001}, csrf_from=f"/parcours/{pathway_id}"
    )
    assert response.status_code == 422 and "caractères au plus" in response.text, response.text[-2000:]
    response = await post(
        client,
        f"/taches/{task.id}/reattribuer",
        {"organisation": "ft_annecy", "motif": "m" * 2001},
        csrf_from=f"/taches/{task.id}",
    )
    assert response.status_code == 422 and "Motif de la réattribution" in response.text
    assert "caractères au plus" in response.text
    response = await post(
        client,
        "/parcours/nouveau",
        {
            "first_name": "P" * 101,
            "last_name": "Test",
            "consent": "oui",
            "basin": "annecien",
            "definition": "test_flow",
        },
        csrf_from="/parcours/nouveau",
    )
    assert response.status_code == 422 and "100 caractères au plus" in response.text
    assert '<p id="first_name-error" class="fr-error-text">100 caractères au plus' in response.text
    # A Form() field too long: FastAPI's 422, shown as a French page, not JSON.
    anonymous = web.client()
    response = await post(
        anonymous, "/connexion", {"email": "a" * 300 + "@x.fr", "password": "x"}, csrf_from="/connexion"
    )
    assert response.status_code == 422 and "254 caractères au plus" in response.text
    assert response.headers["content-type"].startswith("text/html") and "should" not in response.text

    assert count(parcours, models.Note) == notes and count(parcours, models.Person) == persons
    assert parcours.open_task(pathway_id, "accueil").organisation_id == "departement74"
    for each in (client, anonymous):
        await each.aclose()


async def test_refusals_quote_at_most_80_characters_and_nothing_oversized_reaches_the_workflow(
    parcours: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    parcours.publish(flow())
    pathway_id = await parcours.start("test_flow")
    task_id = parcours.open_task(pathway_id, "accueil").id
    camille = parcours.service.actor_for(CAMILLE)
    huge = "x" * 5000
    notes, submissions, persons = (count(parcours, m) for m in (models.Note, models.Submission, models.Person))

    async def no_update(*args: Any) -> Any:
        raise AssertionError("an oversized request reached the workflow")

    monkeypatch.setattr(parcours.service, "_update", no_update)

    async def refused(call: Any) -> ServiceError:
        with pytest.raises(ServiceError) as caught:
            await call
        assert len(caught.value.message) < 300 and huge not in caught.value.message, caught.value.message
        return caught.value

    service = parcours.service
    for error in (
        await refused(service.complete_task(task_id=task_id, actor=camille, outcome=huge, data={"besoin": "emploi"})),
        await refused(service.reassign_task(task_id=task_id, actor=camille, organisation_id=huge, reason="Motif")),
        await refused(service.add_module(pathway_id=pathway_id, actor=camille, module_id=huge)),
        await refused(service.close(pathway_id=pathway_id, actor=camille, exit_reason=huge)),
        await refused(
            service.start_pathway(
                definition_id=huge,
                basin_id="annecien",
                referent_org="departement74",
                person={"first_name": "A", "last_name": "B", "consent": True},
                actor=camille,
            )
        ),
        await refused(service.complete_task(task_id=huge, actor=camille, outcome="fait", data={})),
    ):
        assert "x" * 79 + "…" in error.message or "100 caractères au plus" in error.message, error.message
    with pytest.raises(ServiceError) as caught:
        check_extension(huge)
    assert "x" * 79 + "…" in caught.value.message and len(caught.value.message) < 300

    # Free text over 2,000 characters: refused in French before anything is stored or sent.
    long_text = "t" * 2001
    for call, field in (
        (service.reassign_task(task_id=task_id, actor=camille, organisation_id="ft_annecy", reason=long_text), "motif"),
        (service.skip_step(task_id=task_id, actor=camille, reason=long_text), "motif"),
        (service.pause(pathway_id=pathway_id, actor=camille, reason=long_text), "motif"),
        (service.close(pathway_id=pathway_id, actor=camille, exit_reason="abandon", note=long_text), "note"),
        (
            service.complete_task(
                task_id=task_id, actor=camille, outcome="fait", data={"besoin": "emploi", "commentaire": long_text}
            ),
            "commentaire",
        ),
    ):
        error = await refused(call)
        assert "caractères au plus" in error.message and field in error.fields, (error.message, error.fields)
    with pytest.raises(ServiceError) as caught:
        service.add_note(pathway_id=pathway_id, actor=camille, text=long_text)
    assert "2\u202f000 caractères au plus" in caught.value.message
    # Control: a note of exactly 2,000 characters is accepted.
    service.add_note(pathway_id=pathway_id, actor=camille, text="t" * 2000)

    assert count(parcours, models.Note) == notes + 1
    assert count(parcours, models.Submission) == submissions and count(parcours, models.Person) == persons
    assert parcours.pathway(pathway_id).status == "active"
