"""The JSON API as its clients see it: bearer tokens, who may read and do what (every role on
every route), the need-to-know rules on personal data and their audit trail, and actions that
reach the workflows with their answers visible at once (read-your-writes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from sqlmodel import select
from temporalio.client import Client

from admin_ui.app import create_app
from store import models
from store import queries as q
from store.db import session_scope
from tests.conftest import DEMO_PASSWORD, MailSink, Web, eventually, make_parcours
from tests.flows import flow, timed
from worker.runner import build_worker

CAMILLE = "camille.martin@example.org"  # caseworker, departement74: referent of the pathways
JULIEN = "julien.roux@example.org"  # caseworker, ft_annecy: owns the timed task
SARAH = "sarah.benali@example.org"  # caseworker, ml_annecy: in no follow-up group
LEA = "lea.dupont@example.org"  # GTO lead, annecien
KARIM = "karim.bouzid@example.org"  # GTO lead, genevois
MARC = "marc.girard@example.org"  # designer
ADMIN = "admin@example.org"
THOMAS = "thomas.bernard@example.org"  # caseworker, departement74: used for sign-in failures

ROLES = {
    "anonymous": None,
    "caseworker_referent": CAMILLE,
    "caseworker_task_org": JULIEN,
    "caseworker_outsider": SARAH,
    "gto_lead_basin": LEA,
    "gto_lead_other_basin": KARIM,
    "designer": MARC,
    "admin": ADMIN,
}
ORGANISATION = {
    None: "departement74",
    CAMILLE: "departement74",
    JULIEN: "ft_annecy",
    SARAH: "ml_annecy",
    LEA: "spie74",
    KARIM: "spie74",
    MARC: "spie74",
    ADMIN: "spie74",
}
VALID_NIR = "295057512304541"
TIMED = timed(
    deadline="PT1S",
    reminder_before="PT0.5S",
    reminder_after="PT0.5S",
    level1="PT1S",
    level2="PT1H",
    definition_id="api_timed",
)


@dataclass
class World:
    """One Parcours shared by the module's read-mostly tests: an escalated pathway (annecien),
    one still moving, one escalated for a GTO decision, and a client per role."""

    web: Web
    clients: dict[str, httpx.AsyncClient]
    escalated: str
    moving: str
    to_decide: str
    task: str
    escalation: str
    escalation_to_decide: str

    @property
    def engine(self) -> Any:
        return self.web.parcours.engine

    def ids(self, email: str | None) -> dict[str, str]:
        return {
            "escalated": self.escalated,
            "moving": self.moving,
            "task": self.task,
            "escalation": self.escalation,
            "org": ORGANISATION[email],
        }


@pytest.fixture(scope="module")
async def world(client: Client, mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    parcours = make_parcours(client, mail_sink, f"sqlite:///{tmp_path_factory.mktemp('api') / 'parcours.db'}")
    async with build_worker(client, engine=parcours.engine, settings=parcours.settings):
        parcours.publish(TIMED)
        parcours.publish(flow())
        web = Web(
            parcours=parcours,
            app=create_app(parcours.engine, parcours.settings, service=parcours.service),
        )
        escalated = await parcours.service.start_pathway(
            definition_id="api_timed",
            basin_id="annecien",
            referent_org="departement74",
            person={"first_name": "Alex", "last_name": "Test", "nir": VALID_NIR, "consent": True},
            actor=parcours.service.actor_for(CAMILLE),
        )
        to_decide = await parcours.start("api_timed")
        moving = await parcours.start("test_flow")
        clients = {role: (await web.api(email) if email else web.client()) for role, email in ROLES.items()}

        def escalation_of(pathway_id: str) -> list[models.Escalation]:
            pathway = parcours.pathway(pathway_id)
            return q.list_escalations(parcours.engine, pathway_id=pathway_id) if pathway.sla == "escalated" else []

        escalation = (await eventually(lambda: escalation_of(escalated), timeout=20, what="escalation"))[0]
        to_decide_escalation = (await eventually(lambda: escalation_of(to_decide), timeout=20, what="escalation"))[0]
        yield World(
            web=web,
            clients=clients,
            escalated=escalated,
            moving=moving,
            to_decide=to_decide,
            task=parcours.open_task(escalated, "tache").id,
            escalation=escalation.id,
            escalation_to_decide=to_decide_escalation.id,
        )
        for http in clients.values():
            await http.aclose()
    parcours.engine.dispose()


def audit_views(engine: Any, *, pathway_id: str, email: str) -> list[models.AuditEvent]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(models.AuditEvent).where(
                    models.AuditEvent.pathway_id == pathway_id,
                    models.AuditEvent.action == "personal_data_viewed",
                    models.AuditEvent.actor_user_id == q.user_id_of(engine, email=email),
                )
            )
        )


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    return body


# --- Who may see and do what: every route, every role -------------------------------------

# Each request is a probe: where access is granted it fails validation (or conflicts) instead of
# changing anything, so the same shared pathways serve every row.
REQUESTS: dict[str, tuple[str, str, Any]] = {
    "me": ("GET", "/api/me", None),
    "definitions": ("GET", "/api/definitions", None),
    "publish_definition": ("POST", "/api/definitions", "id: [broken"),  # invalid: 422
    "start_pathway": (
        "POST",
        "/api/pathways",
        {  # no consent: 422
            "definition_id": "api_timed",
            "basin": "annecien",
            "referent_org": "{org}",
            "person": {"first_name": "Alex", "last_name": "Test", "consent": False},
        },
    ),
    "list_pathways": ("GET", "/api/pathways?basin=annecien", None),
    "escalated_pathway": ("GET", "/api/pathways/{escalated}", None),
    "moving_pathway": ("GET", "/api/pathways/{moving}", None),
    "tasks": ("GET", "/api/tasks?scope=organisation", None),
    "complete_task": ("POST", "/api/tasks/{task}/complete", {"outcome": "inconnue"}),  # 422
    "reassign_task": ("POST", "/api/tasks/{task}/reassign", {"organisation": "ft_annecy"}),  # 409
    "decide_escalation": ("POST", "/api/escalations/{escalation}/decision", {"action": "extend"}),
    "escalations": ("GET", "/api/escalations?basin=annecien", None),
    "step_stats": ("GET", "/api/stats/steps", None),
}
# fmt: off
ACCESS: dict[str, tuple[int, ...]] = {
    #                     anon  caseworker:          GTO lead:      designer admin
    #                           ref  task outsider   basin other
    "me":                 (401, 200, 200, 200,       200, 200,      200,     200),
    "definitions":        (401, 200, 200, 200,       200, 200,      200,     200),
    "publish_definition": (401, 403, 403, 403,       403, 403,      422,     422),
    "start_pathway":      (401, 422, 422, 422,       403, 403,      403,     403),
    "list_pathways":      (401, 200, 200, 200,       200, 403,      403,     403),
    "escalated_pathway":  (401, 200, 200, 403,       200, 403,      403,     403),
    "moving_pathway":     (401, 200, 403, 403,       403, 403,      403,     403),
    "tasks":              (401, 200, 200, 200,       403, 403,      403,     403),
    "complete_task":      (401, 403, 422, 403,       403, 403,      403,     403),
    "reassign_task":      (401, 409, 409, 403,       403, 403,      403,     403),
    "decide_escalation":  (401, 403, 403, 403,       422, 403,      403,     422),
    "escalations":        (401, 403, 403, 403,       200, 403,      403,     200),
    "step_stats":         (401, 200, 200, 200,       200, 200,      200,     200),
}
# fmt: on
MATRIX = [(route, role, ACCESS[route][i]) for route in REQUESTS for i, role in enumerate(ROLES)]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("route", "role", "expected"), MATRIX, ids=[f"{r}-{role}" for r, role, _ in MATRIX])
async def test_access_matrix(world: World, route: str, role: str, expected: int) -> None:
    method, path, body = REQUESTS[route]
    ids = world.ids(ROLES[role])
    http = world.clients[role]
    if isinstance(body, str):
        response = await http.request(
            method, path.format(**ids), content=body, headers={"Content-Type": "application/yaml"}
        )
    else:
        response = await http.request(method, path.format(**ids), json=_fill(body, ids) if body is not None else None)
    if expected >= 400:
        body_out = assert_error(response, expected)
        if expected == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        if expected == 422 and route != "publish_definition":
            assert "fields" in body_out or "errors" in body_out
    else:
        assert response.status_code == expected, response.text


async def test_unknown_ids_are_404(world: World) -> None:
    camille, lea = world.clients["caseworker_referent"], world.clients["gto_lead_basin"]
    assert_error(await camille.get("/api/pathways/P-INCONNU"), 404)
    assert_error(await camille.post("/api/tasks/P-INCONNU-1/complete", json={"outcome": "fait"}), 404)
    assert_error(
        await camille.post("/api/tasks/P-INCONNU-1/reassign", json={"organisation": "ml_annecy"}),
        404,
    )
    assert_error(await lea.post("/api/escalations/esc-inconnue/decision", json={"action": "unblock"}), 404)
    assert_error(await camille.get("/api/nulle-part"), 404)
    invalid = assert_error(
        await lea.post(f"/api/escalations/{world.escalation}/decision", json={"action": "abolish"}),
        422,
    )
    assert invalid["errors"][0]["field"] == "action"


async def test_other_denials(world: World) -> None:
    camille, lea, karim = (
        world.clients["caseworker_referent"],
        world.clients["gto_lead_basin"],
        world.clients["gto_lead_other_basin"],
    )
    # A caseworker starts pathways only with their own organisation as referent.
    started = await camille.post(
        "/api/pathways",
        json={
            "definition_id": "api_timed",
            "basin": "annecien",
            "referent_org": "ft_annecy",
            "person": {"first_name": "Alex", "last_name": "Test", "consent": True},
        },
    )
    assert_error(started, 403)
    # A GTO lead sees stuck pathways only, and only in their basin.
    assert_error(await lea.get("/api/pathways?stuck=false"), 403)
    assert_error(await karim.get("/api/escalations?basin=annecien"), 403)
    assert_error(
        await karim.post(f"/api/escalations/{world.escalation}/decision", json={"action": "unblock"}),
        403,
    )
    # Access is checked before the request body: a denied role learns nothing from it.
    assert_error(await world.clients["designer"].post("/api/pathways", json={}), 403)
    assert_error(await world.clients["anonymous"].post("/api/tasks/x/complete", content="{"), 401)
    # A forged or expired token is no token.
    forged = world.web.client()
    forged.headers["Authorization"] = "Bearer not-a-token"
    assert_error(await forged.get("/api/me"), 401)
    await forged.aclose()


# --- Sign-in ---------------------------------------------------------------------------------


async def test_token_and_me(world: World) -> None:
    http = world.web.client()
    wrong = await http.post("/api/auth/token", json={"email": CAMILLE, "password": "pas le bon mot de passe"})
    assert_error(wrong, 401)
    assert_error(
        await http.post("/api/auth/token", json={"email": "personne@example.org", "password": DEMO_PASSWORD}),
        401,
    )
    assert_error(await http.post("/api/auth/token", json={"email": CAMILLE}), 422)
    good = await http.post("/api/auth/token", json={"email": CAMILLE.upper(), "password": DEMO_PASSWORD})
    assert good.status_code == 200 and good.json()["token_type"] == "bearer"
    me = await http.get("/api/me", headers={"Authorization": f"Bearer {good.json()['access_token']}"})
    assert me.json() == {
        "id": q.user_id_of(world.web.parcours.engine, email=CAMILLE),
        "email": CAMILLE,
        "name": "Camille Martin",
        "role": "caseworker",
        "organisation_id": "departement74",
        "organisation_name": "Département de la Haute-Savoie – Direction de l'insertion",
        "organisation_type": "departement",
        "basin_id": None,
    }
    lea = (await world.clients["gto_lead_basin"].get("/api/me")).json()
    assert (lea["role"], lea["basin_id"]) == ("gto_lead", "annecien")
    await http.aclose()


async def test_sign_in_rate_limit(world: World) -> None:
    world.web.ensure_password(THOMAS)
    http = world.web.client()
    for _ in range(5):
        assert_error(
            await http.post("/api/auth/token", json={"email": THOMAS, "password": "mauvais-mot-de-passe"}),
            401,
        )
    blocked = await http.post("/api/auth/token", json={"email": THOMAS, "password": DEMO_PASSWORD})
    assert_error(blocked, 429)
    assert blocked.headers["retry-after"]
    # Another address is not blocked.
    assert (await http.post("/api/auth/token", json={"email": SARAH, "password": DEMO_PASSWORD})).status_code == 200
    await http.aclose()


async def test_session_cookie_needs_csrf_for_changes(world: World) -> None:
    browser = await world.web.signed_in(CAMILLE)
    assert (await browser.get("/api/me")).json()["email"] == CAMILLE
    refused = await browser.post(f"/api/tasks/{world.task}/complete", json={"outcome": "fait"})
    assert "CSRF" in assert_error(refused, 403)["detail"]
    await browser.aclose()


async def test_openapi_and_docs(world: World) -> None:
    http = world.web.client()
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = (await http.get("/openapi.json")).json()
    expected = {
        "/api/auth/token": {"post"},
        "/api/me": {"get"},
        "/api/definitions": {"get", "post"},
        "/api/pathways": {"get", "post"},
        "/api/pathways/{pathway_id}": {"get"},
        "/api/tasks": {"get"},
        "/api/tasks/{task_id}/complete": {"post"},
        "/api/tasks/{task_id}/reassign": {"post"},
        "/api/escalations": {"get"},
        "/api/escalations/{escalation_id}/decision": {"post"},
        "/api/stats/steps": {"get"},
    }
    for path, methods in expected.items():
        assert set(schema["paths"][path]) == methods, path
    assert not [p for p in schema["paths"] if not p.startswith("/api/")]  # pages stay out of the schema
    publish = schema["paths"]["/api/definitions"]["post"]
    assert {"application/yaml", "application/json"} <= set(publish["requestBody"]["content"])
    assert "422" in publish["responses"] and "201" in publish["responses"]
    assert "bearer" in json.dumps(schema["components"]["securitySchemes"]).lower()
    await http.aclose()


# --- Definitions --------------------------------------------------------------------------------


async def test_definitions_published_as_yaml_and_json(world: World) -> None:
    marc = world.clients["designer"]
    source = flow().replace("id: test_flow", "id: api_published")
    created = await marc.post("/api/definitions", content=source, headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201, created.text
    assert created.json() == {"id": "api_published", "version": 1, "created": True}
    again = await marc.post("/api/definitions", content=source, headers={"Content-Type": "text/yaml; charset=utf-8"})
    assert again.status_code == 200 and again.json() == {
        "id": "api_published",
        "version": 1,
        "created": False,
    }

    data = yaml.safe_load(source)
    data["title"] = "Parcours publié en JSON"
    as_json = await marc.post("/api/definitions", json=data)
    assert as_json.status_code == 201 and as_json.json()["version"] == 2

    listed = (await marc.get("/api/definitions")).json()
    mine = [d for d in listed if d["id"] == "api_published"]
    assert mine == [
        {
            "id": "api_published",
            "version": 2,
            "title": "Parcours publié en JSON",
            "status": "active",
            "basins": ["all"],
            "published_at": mine[0]["published_at"],
        }
    ]
    assert {"rsa_socio_pro", "api_timed", "test_flow"} <= {d["id"] for d in listed}
    row = q.latest_definition(world.engine, definition_id="api_published")
    assert row is not None and row.version == 2


async def test_invalid_definitions_name_step_and_field(world: World) -> None:
    marc = world.clients["designer"]
    broken = (
        flow()
        .replace("id: test_flow", "id: api_broken")
        .replace("type: choice\n        required: true", "type: colour\n        required: true")
    )
    refused = assert_error(
        await marc.post("/api/definitions", content=broken, headers={"Content-Type": "application/yaml"}),
        422,
    )
    first = refused["errors"][0]
    assert (first["step"], first["field"]) == ("accueil", "form[0].type")
    assert "colour" in refused["errors"][0]["message"] and "accueil" in refused["detail"]

    data = yaml.safe_load(flow().replace("id: test_flow", "id: api_broken"))
    data["steps"][0]["outcomes"][0]["next"] = "nulle_part"
    refused = assert_error(await marc.post("/api/definitions", json=data), 422)
    [error] = refused["errors"]  # one error: the steps behind a broken transition are not "unreachable"
    assert (error["step"], error["field"]) == ("accueil", "outcomes[0].next")
    assert error["message"].startswith("étape cible inconnue « nulle_part »")

    syntax = assert_error(
        await marc.post("/api/definitions", content="{not json", headers={"Content-Type": "application/json"}),
        422,
    )
    assert "JSON" in syntax["errors"][0]["message"]
    assert_error(
        await marc.post("/api/definitions", content="id: x", headers={"Content-Type": "text/plain"}),
        415,
    )
    assert q.latest_definition(world.engine, definition_id="api_broken") is None


# --- Pathways: lists, detail, need-to-know, audit ----------------------------------------


async def test_caseworkers_list_the_pathways_their_organisation_follows(world: World) -> None:
    def ids(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {p["id"] for p in response.json()["items"]}

    camille = await world.clients["caseworker_referent"].get("/api/pathways?size=200")
    assert {world.escalated, world.moving, world.to_decide} <= ids(camille)
    julien = ids(await world.clients["caseworker_task_org"].get("/api/pathways?size=200"))
    assert world.escalated in julien and world.moving not in julien
    assert ids(await world.clients["caseworker_outsider"].get("/api/pathways")) == set()
    stuck = ids(
        await world.clients["caseworker_referent"].get("/api/pathways?stuck=true&definition=api_timed&size=200")
    )
    assert world.escalated in stuck and world.moving not in stuck
    assert ids(await world.clients["caseworker_referent"].get("/api/pathways?basin=genevois")) == set()

    paged = (await world.clients["caseworker_referent"].get("/api/pathways?size=1&page=2")).json()
    assert (paged["page"], paged["size"], len(paged["items"])) == (2, 1, 1)
    assert paged["total"] >= 3 and paged["pages"] == paged["total"]
    assert "person_id" not in paged["items"][0]  # no personal data in lists


async def test_gto_lead_sees_the_escalated_pathway_of_their_basin_not_a_moving_one(
    world: World,
) -> None:
    lea, karim = world.clients["gto_lead_basin"], world.clients["gto_lead_other_basin"]
    listed = (await lea.get("/api/pathways?size=200")).json()["items"]
    assert world.escalated in {p["id"] for p in listed} and world.moving not in {p["id"] for p in listed}
    assert all(p["basin_id"] == "annecien" for p in listed)
    assert (await karim.get("/api/pathways")).json()["items"] == []

    detail = (await lea.get(f"/api/pathways/{world.escalated}")).json()
    assert detail["access_reason"] == "GTO du bassin"
    assert detail["pathway"]["sla"] == "escalated"
    assert [e["id"] for e in detail["escalations"]] == [world.escalation]
    assert_error(await lea.get(f"/api/pathways/{world.moving}"), 403)

    escalations = (await lea.get("/api/escalations")).json()
    assert {world.escalation, world.escalation_to_decide} <= {e["id"] for e in escalations["items"]}
    assert all(e["basin_id"] == "annecien" and e["status"] == "open" for e in escalations["items"])
    assert (await karim.get("/api/escalations")).json()["items"] == []
    everywhere = (await world.clients["admin"].get("/api/escalations?size=200")).json()["items"]
    assert world.escalation in {e["id"] for e in everywhere}


async def test_pathway_detail_masks_the_nir_by_organisation_type_and_is_audited(
    world: World,
) -> None:
    camille, lea, sarah = (
        world.clients["caseworker_referent"],
        world.clients["gto_lead_basin"],
        world.clients["caseworker_outsider"],
    )
    before = len(audit_views(world.engine, pathway_id=world.escalated, email=CAMILLE))

    detail = (await camille.get(f"/api/pathways/{world.escalated}")).json()
    assert detail["access_reason"] == "groupe de suivi"
    assert (
        detail["person"]["first_name"] == "Alex" and detail["person"]["nir"] == VALID_NIR
    )  # the Département reads NIRs
    assert [s["step_id"] for s in detail["steps"]][:1] == ["tache"]
    assert [(t["step_id"], t["organisation_id"], t["status"]) for t in detail["tasks"]] == [
        ("tache", "ft_annecy", "open")
    ]
    assert {m["organisation_id"] for m in detail["follow_up"]} == {"departement74", "ft_annecy"}
    assert detail["pathway"]["started_at"].endswith(("Z", "+00:00"))

    views = audit_views(world.engine, pathway_id=world.escalated, email=CAMILLE)
    assert len(views) == before + 1
    assert views[-1].actor_org_id == "departement74" and views[-1].detail == {
        "what": "pathway",
        "reason": "groupe de suivi",
    }

    gto_view = (await lea.get(f"/api/pathways/{world.escalated}")).json()
    assert gto_view["person"]["nir"] != VALID_NIR and gto_view["person"]["nir"].endswith(VALID_NIR[-2:])  # SPIE: masked
    assert audit_views(world.engine, pathway_id=world.escalated, email=LEA)[-1].detail["reason"] == "GTO du bassin"

    # A denied read shows nothing and traces nothing.
    assert_error(await sarah.get(f"/api/pathways/{world.escalated}"), 403)
    assert audit_views(world.engine, pathway_id=world.escalated, email=SARAH) == []


async def test_start_pathway_refusals_name_the_problem(world: World) -> None:
    camille = world.clients["caseworker_referent"]
    person = {"first_name": "Alex", "last_name": "Test", "consent": True}

    def start(**changes: Any) -> Any:
        return camille.post(
            "/api/pathways",
            json={
                "definition_id": "api_timed",
                "basin": "annecien",
                "referent_org": "departement74",
                "person": person,
            }
            | changes,
        )

    refused = assert_error(
        await start(person={"first_name": "", "last_name": "Test", "nir": "123", "consent": False}),
        422,
    )
    assert {"first_name", "nir", "consent"} <= set(refused["fields"])
    assert_error(await start(definition_id="inconnu"), 404)
    assert_error(await start(basin="atlantide"), 404)
    assert_error(await start(unexpected="x"), 422)


async def test_step_stats_are_anonymous_counts(world: World) -> None:
    stats = (await world.clients["designer"].get("/api/stats/steps?definition=api_timed&basin=annecien")).json()
    assert [(s["definition_id"], s["step_id"]) for s in stats] == [("api_timed", "tache")]
    entry = stats[0]
    assert entry["total"] == 2 and entry["escalated"] >= 1
    assert entry["on_time"] + entry["due_soon"] + entry["overdue"] + entry["escalated"] == entry["total"]
    assert (
        await world.clients["caseworker_referent"].get("/api/stats/steps?definition=api_timed&basin=genevois")
    ).json() == []


# --- GTO decisions --------------------------------------------------------------------------------


async def test_gto_lead_decides_an_escalation_of_their_basin(world: World) -> None:
    lea = world.clients["gto_lead_basin"]
    decided = await lea.post(
        f"/api/escalations/{world.escalation_to_decide}/decision",
        json={"action": "extend", "extend_by": "PT1H", "note": "Vu en GTO : délai accordé."},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["pathway_id"] == world.to_decide and "extend" in decided.json()["message"]

    still_open = {e["id"] for e in (await lea.get("/api/escalations")).json()["items"]}
    assert world.escalation_to_decide not in still_open and world.escalation in still_open
    done = (await lea.get("/api/escalations?status=decided")).json()["items"]
    assert [(e["id"], e["action"], e["decided_by"]) for e in done] == [
        (world.escalation_to_decide, "extend", q.user_id_of(world.web.parcours.engine, email=LEA))
    ]
    again = await lea.post(f"/api/escalations/{world.escalation_to_decide}/decision", json={"action": "unblock"})
    assert_error(again, 409)


# --- Actions on fresh pathways (default fixture) -----------------------------------------


async def test_start_then_complete_through_the_api_with_read_your_writes(web: Web) -> None:
    marc, camille, julien = await web.api(MARC), await web.api(CAMILLE), await web.api(JULIEN)
    published = await marc.post("/api/definitions", content=flow(), headers={"Content-Type": "application/yaml"})
    assert published.status_code == 201 and published.json()["id"] == "test_flow"

    started = await camille.post(
        "/api/pathways",
        json={
            "definition_id": "test_flow",
            "basin": "annecien",
            "referent_org": "departement74",
            "person": {
                "first_name": "Sam",
                "last_name": "Essai",
                "birth_date": "1991-02-03",
                "consent": True,
            },
        },
    )
    assert started.status_code == 201, started.text
    pathway_id = started.json()["pathway_id"]
    assert started.headers["location"] == f"/api/pathways/{pathway_id}"

    async def open_tasks(http: httpx.AsyncClient, status: str = "open") -> dict[str, str]:
        page = (await http.get(f"/api/tasks?status={status}&size=200")).json()
        return {t["step_id"]: t["id"] for t in page["items"] if t["pathway_id"] == pathway_id}

    accueil = (await open_tasks(camille))["accueil"]
    assert (await camille.get("/api/tasks?scope=mine")).json()["items"] == (
        await camille.get("/api/tasks?scope=organisation")
    ).json()["items"]

    missing = assert_error(
        await camille.post(f"/api/tasks/{accueil}/complete", json={"outcome": "fait", "data": {}}),
        422,
    )
    assert "besoin" in missing["fields"]
    assert_error(
        await camille.post(f"/api/tasks/{accueil}/complete", json={"outcome": "nope", "data": {"besoin": "emploi"}}),
        422,
    )
    assert_error(
        await julien.post(f"/api/tasks/{accueil}/complete", json={"outcome": "fait", "data": {"besoin": "emploi"}}),
        403,
    )

    done = await camille.post(
        f"/api/tasks/{accueil}/complete",
        json={"outcome": "fait", "data": {"besoin": "emploi", "commentaire": "ok"}},
    )
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["pathway_id"] == pathway_id and "Accueil réalisé" in result["message"] and result["opened"]

    # Read-your-writes: the next tasks are in the inboxes as soon as the answer arrives.
    assert set(await open_tasks(camille)) == {"appui_referent"}
    assert set(await open_tasks(julien)) == {"appui_ft"}
    assert set(await open_tasks(camille, "done")) == {"accueil"}
    again = await camille.post(f"/api/tasks/{accueil}/complete", json={"outcome": "fait", "data": {"besoin": "emploi"}})
    assert_error(again, 409)
    # Julien's organisation joined the follow-up group: he may now read the pathway.
    assert (await julien.get(f"/api/pathways/{pathway_id}")).status_code == 200
    for http in (marc, camille, julien):
        await http.aclose()


async def test_after_a_reassignment_the_new_organisation_can_read_the_pathway(web: Web) -> None:
    web.parcours.publish(flow())
    pathway_id = await web.parcours.start("test_flow")
    camille, sarah = await web.api(CAMILLE), await web.api(SARAH)
    accueil = web.parcours.open_task(pathway_id, "accueil").id
    assert_error(await sarah.get(f"/api/pathways/{pathway_id}"), 403)
    assert_error(await sarah.post(f"/api/tasks/{accueil}/reassign", json={"organisation": "ml_annecy"}), 403)
    assert_error(await camille.post(f"/api/tasks/{accueil}/reassign", json={"organisation": "inconnue"}), 404)
    assert_error(
        await camille.post(f"/api/tasks/{accueil}/reassign", json={"organisation": "departement74"}),
        409,
    )

    moved = await camille.post(
        f"/api/tasks/{accueil}/reassign",
        json={"organisation": "ml_annecy", "reason": "Public jeune : la Mission Locale suit."},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["opened"] == [accueil]

    detail = await sarah.get(f"/api/pathways/{pathway_id}")
    assert detail.status_code == 200 and detail.json()["access_reason"] == "groupe de suivi"
    assert detail.json()["person"]["nir"] is None
    inbox = (await sarah.get("/api/tasks")).json()["items"]
    assert [(t["id"], t["organisation_id"]) for t in inbox if t["pathway_id"] == pathway_id] == [(accueil, "ml_annecy")]
    assert len(audit_views(web.parcours.engine, pathway_id=pathway_id, email=SARAH)) == 1
    for http in (camille, sarah):
        await http.aclose()
