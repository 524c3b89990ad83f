"""Administration, written once in `services.administration`: accounts created, changed and
deactivated from the admin pages and from `parcours users add`, every change audited; the rule
for the CLI's `--by`; the CLI refusing to run on a data folder that was never initialised."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from definitions.territory import DEMO_TERRITORY, load_territory
from services import administration
from services.errors import ServiceError
from store import models
from store import queries as q
from store.db import make_engine, session_scope
from tests.conftest import Parcours, Web, csrf_of, prepare_read_model
from tests.test_processes import PARCOURS, base_env, cli
from workflows.contract import Actor

ADMIN = "admin@example.org"
ROOT = Path(__file__).resolve().parents[1]
TERRITORY = str(ROOT / "definitions/territory/haute-savoie.yaml")


@pytest.fixture
def territory_db(tmp_path: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp_path / 'parcours.db'}"
    prepare_read_model(url)
    engine = make_engine(url)
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    return url, engine


def audit(engine: Engine, action: str) -> list[models.AuditEvent]:
    with session_scope(engine) as session:
        return list(session.exec(select(models.AuditEvent).where(models.AuditEvent.action == action)))


ACTOR = Actor(user_id="u-admin", organisation_id="spie74", role="admin")


def test_create_and_change_accounts_refusing_what_is_unknown(territory_db: tuple[str, Engine]) -> None:
    _, engine = territory_db
    made = administration.create_user(
        engine,
        actor=ACTOR,
        email=" Nadia.Test@Example.org ",
        name="Nadia Test",
        organisation="spip74",
        role="caseworker",
    )
    assert made.email == "nadia.test@example.org" and made.active and made.basin_id is None
    assert [e.detail["user"] for e in audit(engine, "user_created")] == [made.id]
    refusals = {
        "organisation": dict(organisation="inconnue", role="caseworker"),
        "basin": dict(organisation="spip74", role="gto_lead", basin="montagne"),
        "role": dict(organisation="spip74", role="chef"),
    }
    for field, values in refusals.items():
        with pytest.raises(ServiceError) as refused:
            administration.create_user(engine, actor=ACTOR, email=f"{field}@example.org", name="X", **values)
        assert field in refused.value.fields and "inconnu" in refused.value.message, refused.value.message
    with pytest.raises(ServiceError, match="bassin"):
        administration.create_user(
            engine, actor=ACTOR, email="g@example.org", name="G", organisation="spip74", role="gto_lead"
        )
    with pytest.raises(ServiceError, match="existe déjà") as duplicate:
        administration.create_user(
            engine, actor=ACTOR, email="nadia.test@example.org", name="Nadia", organisation="spip74", role="caseworker"
        )
    assert duplicate.value.kind == "conflict"
    changed = administration.update_user(
        engine,
        actor=ACTOR,
        user_id=made.id,
        name="Nadia Renommée",
        organisation="spip74",
        role="gto_lead",
        basin="chablais",
        active=False,
    )
    assert (changed.name, changed.role, changed.basin_id, changed.active) == (
        "Nadia Renommée",
        "gto_lead",
        "chablais",
        False,
    )
    assert audit(engine, "user_changed")[-1].detail["active"] == "False"
    assert changed.session_version == made.session_version + 1  # new rights: old sessions and tokens end


def test_by_must_be_a_known_active_user_with_the_commands_role(territory_db: tuple[str, Engine]) -> None:
    _, engine = territory_db
    assert administration.actor_for(engine, email="camille.martin@example.org", command="tasks").role == "caseworker"
    assert administration.actor_for(engine, email=ADMIN, command="escalations").role == "admin"
    with pytest.raises(ServiceError, match="Utilisateur inconnu"):
        administration.actor_for(engine, email="personne@example.org", command="tasks")
    with pytest.raises(ServiceError, match="réservée"):
        administration.actor_for(engine, email="marc.girard@example.org", command="tasks")
    with pytest.raises(ServiceError, match="réservée"):
        administration.actor_for(engine, email="camille.martin@example.org", command="escalations")
    camille = q.get_user_by_email(engine, email="camille.martin@example.org")
    assert camille is not None
    administration.update_user(
        engine,
        actor=ACTOR,
        user_id=camille.id,
        name=None,
        organisation="departement74",
        role="caseworker",
        basin=None,
        active=False,
    )
    with pytest.raises(ServiceError, match="désactivé"):
        administration.actor_for(engine, email="camille.martin@example.org", command="tasks")


def test_cli_users_add_and_by_checked_before_anything(territory_db: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = territory_db
    env = base_env(PARCOURS_DATABASE_URL=url, PARCOURS_DATA_DIR=str(tmp_path), PARCOURS_TEMPORAL_ADDRESS="127.0.0.1:1")
    added = cli(
        env,
        "users",
        "add",
        "paul.test@example.org",
        "--name",
        "Paul Test",
        "--organisation",
        "pjj74",
        "--role",
        "caseworker",
    )
    assert "Compte paul.test@example.org créé" in added.stdout
    user = q.get_user_by_email(engine, email="paul.test@example.org")
    assert user is not None and user.organisation_id == "pjj74" and user.role == "caseworker"
    assert audit(engine, "user_created")
    for args, expected in [
        (["paul.test@example.org", "--name", "P", "--organisation", "pjj74", "--role", "caseworker"], "existe déjà"),
        (
            ["x@example.org", "--name", "X", "--organisation", "nulle", "--role", "caseworker"],
            "Organisation inconnue : nulle",
        ),
        (
            ["x@example.org", "--name", "X", "--organisation", "pjj74", "--role", "gto_lead", "--basin", "mer"],
            "Bassin inconnu : mer",
        ),
        (["x@example.org", "--name", "X", "--organisation", "pjj74", "--role", "chef"], "Rôle inconnu : chef"),
    ]:
        refused = cli(env, "users", "add", *args, check=False)
        assert refused.returncode == 1 and expected in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    # --by: a designer cannot complete a task, a caseworker cannot decide an escalation, an
    # unknown address is refused; all before Temporal (unreachable here) is even reached.
    for args, expected in [
        (["tasks", "complete", "T-1", "--by", "marc.girard@example.org", "--outcome", "x"], "réservée"),
        (["tasks", "complete", "T-1", "--by", "inconnu@example.org", "--outcome", "x"], "Utilisateur inconnu"),
        (["escalations", "decide", "E-1", "--by", "camille.martin@example.org", "--action", "unblock"], "réservée"),
    ]:
        refused = cli(env, *args, check=False)
        assert refused.returncode == 1 and expected in refused.stderr, refused.stderr
    published = cli(
        env,
        "definitions",
        "publish",
        str(ROOT / "definitions/catalog/rsa_socio_pro.yaml"),
        "--by",
        "julien.roux@example.org",
        check=False,
    )
    assert published.returncode == 1 and "réservée" in published.stderr, published.stderr


def test_cli_does_not_create_an_empty_data_folder(tmp_path: Path) -> None:
    env = base_env()
    for args in (
        ["tasks", "list"],
        ["users", "add", "a@example.org", "--name", "A", "--organisation", "o", "--role", "admin"],
    ):
        done = subprocess.run([PARCOURS, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        assert str(tmp_path / ".parcours" / "parcours.db") in done.stderr and "PARCOURS_DATA_DIR" in done.stderr
        assert "parcours setup" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".parcours").exists(), list(tmp_path.iterdir())


async def test_cli_shows_paris_times(parcours: Parcours, tmp_path: Path) -> None:
    pathway_id = await parcours.start("rsa_socio_pro")
    task = parcours.open_tasks(pathway_id)[0]
    env = base_env(PARCOURS_DATABASE_URL=str(parcours.engine.url), PARCOURS_DATA_DIR=str(tmp_path))
    paris = ZoneInfo("Europe/Paris")
    due = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=ZoneInfo("UTC"))
    listed = cli(env, "tasks", "list", "--org", task.organisation_id).stdout
    assert due.astimezone(paris).strftime("%d/%m/%Y %H:%M") in listed, listed
    assert json.loads(cli(env, "tasks", "list", "--org", task.organisation_id, "--json").stdout)[0]["id"] == task.id
    shown = cli(env, "pathways", "show", pathway_id).stdout
    detail = q.pathway_detail(parcours.engine, pathway_id=pathway_id)
    assert detail is not None
    started = datetime.fromisoformat(detail["pathway"]["started_at"])
    started = started if started.tzinfo else started.replace(tzinfo=ZoneInfo("UTC"))
    assert f"démarré le {started.astimezone(paris).strftime('%d/%m/%Y %H:%M')}" in shown, shown


async def test_admin_creates_renames_and_deactivates_from_the_pages(web: Web) -> None:
    engine = web.parcours.engine
    async with await web.signed_in(ADMIN) as client:
        page = await client.get("/admin/utilisateurs")
        assert 'action="/admin/utilisateurs"' in page.text and 'name="name"' in page.text
        csrf = csrf_of(page.text)
        form = {"csrf": csrf, "email": "ines.nouvelle@example.org", "name": "Inès Nouvelle", "role": "caseworker"}
        created = await client.post("/admin/utilisateurs", data={**form, "organisation": "spip74", "active": "1"})
        assert created.status_code == 303
        user = q.get_user_by_email(engine, email="ines.nouvelle@example.org")
        assert user is not None and user.organisation_id == "spip74" and user.active
        again = await client.post("/admin/utilisateurs", data={**form, "organisation": "spip74", "active": "1"})
        assert again.status_code == 303
        assert "existe déjà" in (await client.get("/admin/utilisateurs")).text
        unknown = await client.post(
            "/admin/utilisateurs", data={**form, "email": "autre@example.org", "organisation": "nulle"}
        )
        assert unknown.status_code == 303 and q.get_user_by_email(engine, email="autre@example.org") is None
        assert "Organisation inconnue" in (await client.get("/admin/utilisateurs")).text
        edited = await client.post(
            f"/admin/utilisateurs/{user.id}",
            data={"csrf": csrf, "name": "Inès Renommée", "role": "caseworker", "organisation": "pjj74"},
        )
        assert edited.status_code == 303
    changed = q.get_user_by_email(engine, email="ines.nouvelle@example.org")
    assert changed is not None and (changed.name, changed.organisation_id, changed.active) == (
        "Inès Renommée",
        "pjj74",
        False,
    )
    assert [e.actor_user_id for e in audit(engine, "user_created")] == [q.user_id_of(engine, email=ADMIN)]
    assert audit(engine, "user_changed")


# Who may be a pathway's referent: the organisations that accompany people (a referent starts
# the pathway with their own organisation), not the SPIE, the employers or their federations.
REFERENT_TYPES = {"departement", "france_travail", "mission_locale", "cap_emploi", "spip", "pjj", "caf", "msa"}


def test_the_demo_territory_has_a_caseworker_wherever_the_catalog_gives_work() -> None:
    """Derived from the catalog and the territory: for each pathway, in each basin where it is
    open, the organisation each task goes to (partner of a type serving the basin, a fixed
    organisation, or any organisation that may be the referent) has an active caseworker."""
    from definitions.loader import load_file
    from definitions.territory import CATALOG_DIR

    territory = load_territory(DEMO_TERRITORY)
    basin_ids = [b.id for b in territory.basins]
    staffed = {u.organisation for u in territory.users if u.role == "caseworker" and getattr(u, "active", True)}
    needed: dict[str, set[str]] = {}
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        definition = load_file(path)
        open_in = basin_ids if "all" in definition.basins else list(definition.basins)
        for basin in open_in:
            serving = [o for o in territory.organisations if basin in o.basins or "all" in o.basins]
            for task in definition.all_tasks():
                if task.role.startswith("partner:"):
                    kind = task.role.removeprefix("partner:")
                    chosen = sorted((o for o in serving if o.type == kind), key=lambda o: o.id)
                    assert chosen, f"{definition.id}: no {kind} serves {basin}"
                    orgs = {chosen[0].id}
                elif task.role.startswith("organisation:"):
                    orgs = {task.role.removeprefix("organisation:")}
                else:
                    orgs = {o.id for o in serving if o.type in REFERENT_TYPES}
                for org in orgs:
                    needed.setdefault(org, set()).add(f"{definition.id}/{basin}/{task.id}")
    assert {"spip74", "pjj74", "ft_cluses", "ml_arve", "mobilite_chablais"} <= set(needed), sorted(needed)
    missing = {org: sorted(where)[:3] for org, where in needed.items() if org not in staffed}
    assert not missing, f"organisations given work without an active caseworker: {missing}"


def test_where_emails_go_is_said_once_for_the_dev_stack_and_the_page() -> None:
    from parcours.settings import Settings

    captured = administration.where_emails_go(Settings(capture_smtp_port=2600))
    assert "capturés localement (SMTP 127.0.0.1:2600)" in captured and "/dev/emails" in captured
    # The dev stack points the UI at its own capture: still "captured" from the page's side.
    assert administration.emails_captured(Settings(smtp_host="127.0.0.1", smtp_port=2600, capture_smtp_port=2600))
    sent = administration.where_emails_go(Settings(smtp_host="smtp.example.org", smtp_port=587))
    assert "envoyés au serveur SMTP smtp.example.org:587" in sent and "capturés ici" in sent


async def test_the_captured_emails_page_says_where_emails_go(web: Web) -> None:
    async with await web.signed_in(ADMIN) as client:
        page = await client.get("/dev/emails")
    assert page.status_code == 200
    port = web.parcours.settings.smtp_port
    assert f"envoyés au serveur SMTP 127.0.0.1:{port}" in page.text, page.text[:2000]


def test_cli_usage_errors_are_french(tmp_path: Path) -> None:
    env = base_env(COLUMNS="200")
    for args, expected in [
        (["tasks", "complete", "T-1"], "option obligatoire manquante : '--by'"),
        (["tasks", "list", "--page", "abc"], "valeur invalide pour '--page' : un nombre entier est attendu"),
        (["tasks", "list", "--nope"], "option inconnue : --nope"),
        (["inconnue"], "Commande inconnue"),
    ]:
        done = subprocess.run([PARCOURS, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and expected in done.stderr and "Erreur" in done.stderr, done.stderr
        assert "Missing" not in done.stderr and "Invalid value" not in done.stderr and "Try '" not in done.stderr
