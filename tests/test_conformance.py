"""Conformance of the JSON API to its own OpenAPI (/openapi.json): schemathesis generates valid and
invalid requests for every operation, sent with an administrator's bearer token to the real
admin UI process (`parcours ui` on a free loopback port, the test's worker behind it). No request
may end in a server error (5xx): NaN, infinities, huge numbers, page numbers and over-long strings
are refused with 4xx. Bounded: a few examples per operation, no deadline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

from tests.conftest import DEMO_PASSWORD, Parcours, Web
from tests.test_processes import base_env, spawn
from worker.temporal_server import DevServer, free_port

ADMIN = "admin@example.org"
EXAMPLES = 12  # per operation and per mode: the whole run stays within a few minutes on 2 cores


def wait_until_serving(url: str, process: Any, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"parcours ui exited {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"parcours ui not serving at {url}:\n{log.read_text(errors='replace')}")


def fuzz(base_url: str, token: str, statuses: dict[int, int]) -> list[str]:
    """Every operation, positive then negative data; the 5xx answers found, one line each."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, headers=headers, timeout=60)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    errors.append(
                        f"{case.method} {case.formatted_path} {response.status_code} "
                        f"query={case.query!r} body={str(case.body)[:300]!r}: {response.text[:300]}"
                    )

            check()
    return errors


async def test_the_api_answers_every_generated_request_without_a_server_error(
    web: Web, parcours: Parcours, temporal_server: DevServer, tmp_path: Path
) -> None:
    web.ensure_password(ADMIN)
    port = free_port()
    env = base_env(
        PARCOURS_DATABASE_URL=str(parcours.engine.url),
        PARCOURS_DATA_DIR=str(tmp_path),
        PARCOURS_TEMPORAL_ADDRESS=temporal_server.address,
        PARCOURS_TASK_QUEUE=parcours.settings.task_queue,
        PARCOURS_SMTP_HOST="127.0.0.1",
        PARCOURS_SMTP_PORT=str(parcours.mail.port),
        PARCOURS_UI_HOST="127.0.0.1",
        PARCOURS_UI_PORT=str(port),
    )
    log = tmp_path / "ui.log"
    ui = spawn(env, "ui", log=log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until_serving, base_url, ui, log)
        async with httpx.AsyncClient(base_url=base_url) as client:
            signed = await client.post("/api/auth/token", json={"email": ADMIN, "password": DEMO_PASSWORD})
            assert signed.status_code == 200, signed.text
            token = signed.json()["access_token"]
        await parcours.start("rsa_socio_pro")  # something to list, read and act on
        statuses: dict[int, int] = {}
        errors = await asyncio.to_thread(fuzz, base_url, token, statuses)
    finally:
        ui.terminate()
        ui.wait(30)
    print("statuses:", dict(sorted(statuses.items())))
    assert not errors, "\n".join(errors[:20])
    assert sum(n for code, n in statuses.items() if code < 300) >= 10, statuses  # the token worked: not all refused
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-4000:]


CAMILLE = "camille.martin@example.org"
HUGE_PAGE = "9" * 30


async def test_non_finite_numbers_huge_pages_and_long_strings_are_refused_not_server_errors(web: Web) -> None:
    """What schemathesis may take long to stumble on, asked directly: each answer a 4xx, never a 5xx."""
    pathway_id = await web.parcours.start("rsa_socio_pro")
    task = web.parcours.open_tasks(pathway_id)[0]
    web.ensure_password(CAMILLE)
    web.ensure_password(ADMIN)
    transport = httpx.ASGITransport(app=web.app, raise_app_exceptions=False)
    tokens: dict[str, str] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://parcours.test") as client:
        for email in (CAMILLE, ADMIN):
            signed = await client.post("/api/auth/token", json={"email": email, "password": DEMO_PASSWORD})
            tokens[email] = signed.json()["access_token"]
        caseworker = {"Authorization": f"Bearer {tokens[CAMILLE]}"}
        admin = {"Authorization": f"Bearer {tokens[ADMIN]}"}
        long = "x" * 20_000
        asked: list[tuple[str, str, dict[str, str], str | None]] = [
            ("GET", f"/api/pathways?page={HUGE_PAGE}", admin, None),
            ("GET", f"/api/tasks?page={HUGE_PAGE}", caseworker, None),
            ("GET", f"/api/escalations?page={HUGE_PAGE}", admin, None),
            ("GET", f"/api/pathways?basin={long}&definition={long}", admin, None),
            ("GET", f"/api/stats/steps?definition={long}&basin={long}", admin, None),
            ("GET", f"/api/pathways/{long}", admin, None),
        ]
        for raw in ("NaN", "Infinity", "-Infinity", "1e999"):
            answers = f'{{"outcome": "orientee", "data": {{"type_orientation": "sociale", "n": {raw}}}}}'
            asked.append(("POST", f"/api/tasks/{task.id}/complete", caseworker, answers))
            asked.append(("POST", f"/api/tasks/{task.id}/complete", caseworker, f'{{"outcome": {raw}}}'))
            person = f'{{"first_name": "A", "last_name": "B", "consent": true, "age": {raw}}}'
            asked.append(
                (
                    "POST",
                    "/api/pathways",
                    caseworker,
                    '{"definition_id": "rsa_socio_pro", "basin": "annecien", "referent_org": "departement74", '
                    f'"person": {person}}}',
                )
            )
        asked += [
            ("POST", f"/api/tasks/{task.id}/complete", caseworker, f'{{"outcome": "{long}"}}'),
            ("POST", f"/api/tasks/{task.id}/reassign", caseworker, f'{{"organisation": "{long}"}}'),
            ("POST", "/api/auth/token", {}, f'{{"email": "{long}", "password": "x"}}'),
            (
                "POST",
                "/api/pathways",
                caseworker,
                f'{{"definition_id": "{long}", "basin": "annecien", "referent_org": "departement74", "person": {{}}}}',
            ),
        ]
        found: list[str] = []
        for method, url, headers, body in asked:
            response = await client.request(
                method, url, headers={**headers, "Content-Type": "application/json"}, content=body
            )
            # Reads may answer an empty (or last) page; what is sent must be refused with a 4xx.
            if response.status_code >= 500 or (method == "POST" and response.status_code < 400):
                found.append(f"{method} {url[:80]} {(body or '')[:80]} -> {response.status_code} {response.text[:200]}")
    assert not found, "\n".join(found)


def test_api_request_models_refuse_non_finite_numbers_and_unbounded_strings() -> None:
    """The models themselves, not only what lies behind them, refuse what no form can hold."""
    import pydantic

    from admin_ui.api import CompleteIn, DecisionIn, PathwayIn, ReassignIn

    for answer in (float("nan"), float("inf"), -float("inf"), 10**400, {"nested": [float("nan")]}, "x" * 20_000):
        with pytest.raises(pydantic.ValidationError):
            CompleteIn(outcome="fait", data={"n": answer})
        with pytest.raises(pydantic.ValidationError):
            PathwayIn(definition_id="d", basin="b", referent_org="o", person={"age": answer})
    long = "x" * 20_000
    for build in (
        lambda: CompleteIn(outcome=long),
        lambda: ReassignIn(organisation=long),
        lambda: DecisionIn(action="extend", extend_by=long),
        lambda: PathwayIn(definition_id=long, basin="b", referent_org="o", person={}),
    ):
        with pytest.raises(pydantic.ValidationError):
            build()
    assert CompleteIn(outcome="fait", data={"n": 3.5, "ok": True, "list": [1, "a"]}).data["n"] == 3.5
