"""Definitions written once in `services.definitions`: the pages, the JSON API and the CLI publish
through it, so `published_by` holds the publisher's user id whatever the front end, and the CLI's
`--by` must name a known designer or administrator. No Temporal server needed."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy.engine import Engine

from definitions.territory import DEMO_TERRITORY, load_territory
from parcours.settings import Settings
from services import definitions as service_definitions
from services.errors import ServiceError
from store import queries as q
from store.db import make_engine
from tests.conftest import DEMO_PASSWORD, prepare_read_model
from tests.test_processes import base_env, cli

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "definitions" / "catalog"
DESIGNER = "marc.girard@example.org"


@pytest.fixture
def territory_db(tmp_path: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp_path / 'parcours.db'}"
    prepare_read_model(url)
    engine = make_engine(url)
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    return url, engine


def user_id(engine: Engine, email: str) -> str:
    user = q.get_user_by_email(engine, email=email)
    assert user is not None
    return user.id


def published_by(engine: Engine, definition_id: str, version: int) -> str | None:
    return service_definitions.version_row(engine, definition_id, version).published_by


def test_by_must_be_a_known_designer_or_admin(territory_db: tuple[str, Engine]) -> None:
    _, engine = territory_db
    assert service_definitions.publisher(engine, DESIGNER).user_id == user_id(engine, DESIGNER)
    assert service_definitions.publisher(engine, "admin@example.org").role == "admin"
    for email, expected in [("inconnu@example.org", "Utilisateur inconnu"), ("julien.roux@example.org", "réservée")]:
        with pytest.raises(ServiceError, match=expected) as refused:
            service_definitions.publisher(engine, email)
        assert refused.value.kind == "forbidden"


async def test_the_api_the_pages_and_the_cli_store_the_publishers_user_id(
    territory_db: tuple[str, Engine], tmp_path: Path
) -> None:
    from admin_ui.app import create_app
    from admin_ui.security import set_password

    url, engine = territory_db
    marc = user_id(engine, DESIGNER)
    set_password(engine, email=DESIGNER, password=DEMO_PASSWORD)
    app = create_app(engine, Settings(database_url=url), service=SimpleNamespace(engine=engine))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://parcours.test") as client:
        token = (await client.post("/api/auth/token", json={"email": DESIGNER, "password": DEMO_PASSWORD})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/yaml"}
        text = (CATALOG / "boe_cap_emploi.yaml").read_text(encoding="utf-8")
        created = await client.post("/api/definitions", content=text, headers=headers)
        assert created.status_code == 201, created.text
        assert published_by(engine, "boe_cap_emploi", 1) == marc  # the user id, not the e-mail
        # Errors: French, with their line.
        broken = text.replace("exit_reason: formation", "exit_reason: vacances", 1)
        refused = await client.post("/api/definitions", content=broken, headers=headers)
        assert refused.status_code == 422
        [error] = refused.json()["errors"]
        assert "motif de sortie inconnu" in error["message"]
        assert error["line"] == next(i + 1 for i, line in enumerate(broken.splitlines()) if "vacances" in line)

        # The page: signed in through the form, then published.
        page = await client.get("/connexion")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        signed = await client.post(
            "/connexion", data={"email": DESIGNER, "password": DEMO_PASSWORD, "csrf": csrf.group(1)}
        )
        assert signed.status_code == 303
        form = await client.get("/definitions/nouvelle")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        text = (CATALOG / "deld_immersion.yaml").read_text(encoding="utf-8")
        posted = await client.post("/definitions/nouvelle", data={"csrf": csrf.group(1), "source": text})
        assert posted.status_code == 303, posted.text[:500]
        assert published_by(engine, "deld_immersion", 1) == marc

    # The CLI: --by an e-mail, stored as the user id; a caseworker is refused in French.
    env = base_env(PARCOURS_DATABASE_URL=url, PARCOURS_DATA_DIR=str(tmp_path), PARCOURS_TEMPORAL_ADDRESS="127.0.0.1:1")
    path = str(CATALOG / "rsa_socio_pro.yaml")
    refused_cli = cli(env, "definitions", "publish", path, "--by", "camille.martin@example.org", check=False)
    assert refused_cli.returncode == 1 and "réservée" in refused_cli.stderr
    assert q.latest_definition(engine, definition_id="rsa_socio_pro") is None
    cli(env, "definitions", "publish", path, "--by", DESIGNER)
    assert published_by(engine, "rsa_socio_pro", 1) == marc


def test_cli_validate_prints_french_errors_with_their_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = (CATALOG / "rsa_socio_pro.yaml").read_text(encoding="utf-8").replace("next: diagnostic", "next: diagnostik")
    broken.write_text(text, encoding="utf-8")
    failed = cli(base_env(), "definitions", "validate", str(broken), check=False)
    line = next(i + 1 for i, row in enumerate(text.splitlines()) if "next: diagnostik" in row)
    assert failed.returncode == 1
    assert f"{broken}, ligne {line} : étape « orientation »" in failed.stdout, failed.stdout
    assert "étape cible inconnue « diagnostik » (vouliez-vous dire « diagnostic » ?)" in failed.stdout
    assert "atteignable" not in failed.stdout  # no cascade behind the broken transition
