"""The `parcours` command: operators, designers and scripts. `--json` prints machine-readable
output. Every command ends its process deliberately (see DESIGN.md: SDK exit abort)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from sqlalchemy.engine import Engine

from definitions.schema import EXIT_REASONS
from parcours import presenters
from parcours.settings import ConfigError, Settings, load_settings
from services import administration
from services import definitions as service_definitions
from services.errors import ServiceError
from services.pathways import PathwayService
from store import queries as q
from store.db import engine_for
from store.migrations import SchemaError, require_head, upgrade_to_head
from workflows.contract import OPERATOR, Actor

app = typer.Typer(
    help="Parcours : parcours d'insertion multi-partenaires sur Temporal.", no_args_is_help=True, add_completion=False
)
definitions_app = typer.Typer(help="Définitions de parcours (YAML).", no_args_is_help=True)
territory_app = typer.Typer(help="Territoire : bassins, organisations, utilisateurs.", no_args_is_help=True)
pathways_app = typer.Typer(help="Parcours des personnes.", no_args_is_help=True)
tasks_app = typer.Typer(help="Tâches des organisations.", no_args_is_help=True)
escalations_app = typer.Typer(help="Escalades vers les GTO.", no_args_is_help=True)
users_app = typer.Typer(help="Utilisateurs : comptes et mots de passe.", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents : parcours qui n'avancent plus seuls.", no_args_is_help=True)
for sub, name in (
    (definitions_app, "definitions"),
    (territory_app, "territory"),
    (pathways_app, "pathways"),
    (tasks_app, "tasks"),
    (escalations_app, "escalations"),
    (users_app, "users"),
    (incidents_app, "incidents"),
):
    app.add_typer(sub, name=name)

JsonOption = typer.Option(False, "--json", help="Sortie JSON")


def request_id_option() -> Any:
    return typer.Option(
        None,
        "--request-id",
        help="Identifiant de la demande (défaut : un nouveau) : relancée avec le même, la commande "
        "n'agit qu'une fois et redonne la première réponse",
    )


def request_id_of(value: str | None) -> str:
    """`--request-id`, checked (a French refusal naming the option), or a new one."""
    from services.requests import check_request_id, new_request_id

    if value is None:
        return new_request_id()
    try:
        check_request_id(value, label="--request-id")
    except ServiceError as error:
        fail(error.message)
    return value


def retry_hint(error: ServiceError, request_id: str) -> ServiceError:
    """An unknown outcome (Temporal did not answer in time): how to retry without acting twice."""
    if error.kind != "unavailable":
        return error
    return ServiceError(
        f"{error.message}\nRelancez la même commande avec --request-id {request_id} : elle n'agira qu'une fois.",
        error.kind,
        error.fields,
    )


def finish(code: int = 0) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"Erreur : {message}", err=True)
    finish(code)


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        fail(f"configuration invalide : {error}", 2)


def paris(value: str | datetime | None) -> str:
    """A stored UTC time as Europe/Paris wall-clock time, to the minute (what people read)."""
    if value is None or value == "":
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return presenters.paris(moment).strftime("%d/%m/%Y %H:%M")


def missing_data_folder(config: Settings) -> str | None:
    """Why the read model is absent, or None: a SQLite file that does not exist yet is never created
    by a command that only reads or acts (an empty one would look like a territory with nobody)."""
    url = config.resolved_database_url
    if not url.startswith("sqlite") or ":memory:" in url:
        return None
    path = Path(url.split("///", 1)[-1])
    if path.exists():
        return None
    where = "PARCOURS_DATABASE_URL" if config.database_url else "PARCOURS_DATA_DIR"
    return (
        f"aucune base de lecture initialisée : {path} n'existe pas (dossier de données cherché : "
        f"{path.parent}, d'après {where}). Lancez la commande depuis le dossier du projet, ou réglez "
        "PARCOURS_DATA_DIR sur le dossier de données (ex. PARCOURS_DATA_DIR=/chemin/vers/.parcours), "
        "ou lancez `parcours setup` (ou `parcours dev`) pour le créer."
    )


def by_actor(engine: Engine, email: str, command: str) -> Actor:
    """`--by EMAIL`: a known, active user whose role may run this kind of command (services' rule)."""
    try:
        return administration.actor_for(engine, email=email, command=command)
    except ServiceError as error:
        fail(error.message)


def read_model(config: Settings) -> Engine:
    """The read model, refused unless its schema is at this code's revision (`parcours setup` migrates)."""
    missing = missing_data_folder(config)
    if missing:
        fail(missing)
    engine = engine_for(config.resolved_database_url)
    try:
        require_head(engine)
    except SchemaError as error:
        fail(str(error))
    return engine


def migrated_read_model(config: Settings) -> Engine:
    """The read model brought to this code's revision (setup only), saying from which revision to which."""
    engine = engine_for(config.resolved_database_url)
    try:
        upgrade = upgrade_to_head(engine)
    except SchemaError as error:
        fail(str(error))
    typer.echo(upgrade.describe())
    return engine


def emit(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str) if as_json else text())


def run_async(work: Callable[[Settings], Coroutine[Any, Any, None]]) -> NoReturn:
    """Run a command needing Temporal; turn refusals and connection problems into one clear line."""
    config = settings()
    try:
        asyncio.run(work(config))
    except ServiceError as error:
        lines = [error.message] + [f"  {field} : {message}" for field, message in error.fields.items()]
        fail("\n".join(lines), 75 if error.kind == "unavailable" else 1)  # 75: EX_TEMPFAIL, retry
    except RuntimeError as error:
        if "Connection refused" in str(error) or "transport error" in str(error).lower():
            fail(
                f"serveur Temporal injoignable à {config.temporal_address} : lancez `parcours dev` ou réglez PARCOURS_TEMPORAL_ADDRESS."
            )
        raise
    finish(0)


async def service_for(config: Settings) -> PathwayService:
    from services.temporal import connect

    try:
        client = await connect(config.temporal_address, config.temporal_namespace)
    except RuntimeError:
        raise ServiceError(
            f"serveur Temporal injoignable à {config.temporal_address} : lancez `parcours dev` ou réglez PARCOURS_TEMPORAL_ADDRESS.",
            "conflict",
        ) from None
    return PathwayService.from_settings(client, read_model(config), config)


# --- Processes ------------------------------------------------------------------------------


@app.command()
def dev(no_demo: bool = typer.Option(False, "--no-demo", help="Sans parcours de démonstration")) -> None:
    """Lancer tout en local : serveur Temporal (SQLite), worker, interface, démo."""
    from worker.devstack import run_dev

    config = settings()
    try:
        asyncio.run(run_dev(config, demo=not no_demo))
    except RuntimeError as error:
        fail(str(error))
    finish(0)


@app.command()
def worker() -> None:
    """Lancer un worker (production : plusieurs, même code) jusqu'à SIGTERM / Ctrl-C."""
    from services.temporal import connect
    from worker.runner import build_worker

    async def work(config: Settings) -> None:
        engine = read_model(config)  # an outdated read model stops the worker before anything else
        try:
            client = await connect(config.temporal_address, config.temporal_namespace)
        except RuntimeError:
            raise ServiceError(f"serveur Temporal injoignable à {config.temporal_address}", "conflict") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with build_worker(client, engine=engine, settings=config):
            typer.echo(f"[parcours] worker prêt (file {config.task_queue}, {config.temporal_address})", err=True)
            await stop.wait()
        typer.echo("[parcours] worker arrêté", err=True)

    run_async(work)


@app.command()
def setup(
    demo_territory: bool = typer.Option(True, help="Charger le territoire et le catalogue de démonstration"),
) -> None:
    """Préparer un cluster : attributs de recherche Temporal, migration de la base de lecture, territoire et catalogue."""
    from services.temporal import connect
    from worker.demo import load_reference_data
    from workflows.search_attributes import ensure_registered

    async def work(config: Settings) -> None:
        try:
            client = await connect(config.temporal_address, config.temporal_namespace)
        except RuntimeError:
            raise ServiceError(f"serveur Temporal injoignable à {config.temporal_address}", "conflict") from None
        added = await ensure_registered(client, config.temporal_namespace)
        typer.echo(f"Attributs de recherche : {', '.join(added) if added else 'déjà enregistrés'}")
        engine = migrated_read_model(config)
        if demo_territory:
            published = load_reference_data(engine)
            typer.echo("Catalogue : " + ", ".join(f"{i} v{v}" for i, v, _ in published))

    run_async(work)


@app.command()
def ui(
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="Processus uvicorn (défaut : PARCOURS_UI_WORKERS, 1)"
    ),
) -> None:
    """Servir l'interface d'administration et l'API (production : derrière un proxy)."""
    import uvicorn

    config = settings()
    read_model(config).dispose()  # refused here, once, before any worker process starts
    # By import string and factory: each uvicorn worker process builds its own app, read-model
    # engine and Temporal connection from the PARCOURS_* environment (admin_ui.app).
    uvicorn.run(
        "admin_ui.app:app_from_environment",
        factory=True,
        workers=workers or config.ui_workers,
        host=config.ui_host,
        port=config.ui_port,
        log_level="info",
        proxy_headers=False,  # the client address comes from PARCOURS_TRUSTED_PROXY_HEADER only
    )
    finish(0)


# --- Definitions ----------------------------------------------------------------------------


@definitions_app.command("validate")
def definitions_validate(paths: list[Path], as_json: bool = JsonOption) -> None:
    """Valider des fichiers : code 0 si tous sont valides, 1 avec une ligne par erreur."""
    errors: list[dict[str, Any]] = []
    valid: list[dict[str, str]] = []
    lines: list[str] = []
    for path in paths:
        checked = service_definitions.check_file(None, path)
        if checked.definition is not None:
            valid.append({"file": str(path), "id": checked.definition.id})
        errors.extend(e.as_dict() for e in checked.errors)
        lines.extend(str(e) for e in checked.errors)  # file, line, step, field: the message in French
    if as_json:
        emit({"valid": valid, "errors": errors}, True, str)
    else:
        for item in valid:
            typer.echo(f"OK {item['file']} ({item['id']})")
        for line in lines:
            typer.echo(line)
    finish(1 if errors else 0)


@definitions_app.command("publish")
def definitions_publish(
    path: Path, by: str = typer.Option(None, "--by", help="E-mail du concepteur"), as_json: bool = JsonOption
) -> None:
    """Publier une définition : nouvelle version (les parcours en cours gardent la leur)."""
    config = settings()
    checked = service_definitions.check_file(None, path)
    if checked.definition is None:
        for item in checked.errors:
            typer.echo(str(item), err=True)
        finish(1)
    definition = checked.definition
    engine = read_model(config)
    # The same rule as the pages and the API: a known designer or administrator, stored by user id.
    actor = by_actor(engine, by, "definitions") if by else None
    published = service_definitions.publish_definition(engine, actor, definition, checked.text)
    version, created = published.version, published.created
    emit(
        {"id": definition.id, "version": version, "created": created},
        as_json,
        lambda: f"{definition.id} {version}" + ("" if created else " (inchangée : version existante)"),
    )
    finish(0)


@definitions_app.command("schema")
def definitions_schema() -> None:
    """Exporter le JSON Schema des définitions (complétion dans les éditeurs)."""
    typer.echo(json.dumps(service_definitions.schema(), ensure_ascii=False, indent=2))
    finish(0)


# --- Territory ------------------------------------------------------------------------------


@territory_app.command("load")
def territory_load(file: Path, as_json: bool = JsonOption) -> None:
    """Charger (ou mettre à jour) le territoire depuis un fichier YAML."""
    config = settings()
    try:
        territory, counts = administration.load_territory_file(read_model(config), path=file, actor=OPERATOR)
    except ServiceError as error:
        fail(error.message)
    emit(
        counts,
        as_json,
        lambda: (
            f"Territoire « {territory.name} » chargé : {counts['basins']} bassins, {counts['organisations']} organisations, {counts['users']} utilisateurs"
        ),
    )
    finish(0)


# --- Pathways -------------------------------------------------------------------------------


@pathways_app.command("start")
def pathways_start(
    definition: str = typer.Option(..., "--definition"),
    basin: str = typer.Option(..., "--basin"),
    referent: str = typer.Option(..., "--referent", help="Organisation référente"),
    person: Path = typer.Option(..., "--person", help="Fichier JSON de la personne (consent: true requis)"),
    by: str = typer.Option(None, "--by", help="E-mail de l'utilisateur qui démarre"),
    request_id: str = request_id_option(),
    as_json: bool = JsonOption,
) -> None:
    """Démarrer le parcours d'une personne (relancée avec le même --request-id : le même parcours)."""
    request = request_id_of(request_id)
    try:
        person_data = json.loads(person.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        fail(f"{person} : fichier personne illisible ({error})")

    async def work(config: Settings) -> None:
        service = await service_for(config)
        actor = (
            by_actor(service.engine, by, "pathways")
            if by
            else Actor(user_id="cli", organisation_id=referent, role="caseworker")
        )
        try:
            pathway_id = await service.start_pathway(
                definition_id=definition,
                basin_id=basin,
                referent_org=referent,
                person=person_data,
                actor=actor,
                request_id=request,
            )
        except ServiceError as error:
            raise retry_hint(error, request) from None
        tasks = [t.model_dump(mode="json") for t in q.list_tasks(service.engine, pathway_id=pathway_id)]
        emit(
            {"pathway_id": pathway_id, "open_tasks": tasks},
            as_json,
            lambda: pathway_id + "".join(f"\n  tâche {t['id']} : {t['title']} ({t['organisation_id']})" for t in tasks),
        )

    run_async(work)


@pathways_app.command("show")
def pathways_show(pathway_id: str, as_json: bool = JsonOption) -> None:
    """Afficher un parcours : étapes, tâches, escalades, groupe de suivi, historique."""
    config = settings()
    detail = q.pathway_detail(read_model(config), pathway_id=pathway_id)
    if detail is None:
        fail(f"parcours inconnu : {pathway_id}")

    def text() -> str:
        p = detail["pathway"]
        lines = [
            f"{p['id']} — {p['definition_id']} v{p['definition_version']} — {p['basin_id']} — {p['status']} ({p['sla'] or '-'})",
            f"  démarré le {paris(p['started_at'])} (heure de Paris)"
            + (f", clos le {paris(p['closed_at'])}" if p.get("closed_at") else ""),
        ]
        if p.get("exit_reason"):
            reason = p["exit_reason"]
            lines.append(f"  motif de sortie : {EXIT_REASONS.get(reason, reason)} ({reason})")
        due = {t["step_id"]: t["due_at"] for t in detail["tasks"] if t.get("status") == "open" and t.get("due_at")}
        for s in detail["steps"]:
            line = f"  {s['status']:>9}  {s['step_id']}  {s['title']}  (ouverte le {paris(s['opened_at'])}"
            line += f", échéance {paris(due[s['step_id']])})" if s["step_id"] in due else ")"
            lines.append(line)
        lines += [
            f"  escalade {e['id']} niveau {e['level']} ({e['status']}) depuis le {paris(e['opened_at'])}"
            for e in detail["escalations"]
        ]
        return "\n".join(lines)

    emit(detail, as_json, text)
    finish(0)


@pathways_app.command("migrate")
def pathways_migrate(
    definition: str = typer.Option(..., "--definition", help="Identifiant de la définition"),
    to_version: int = typer.Option(..., "--to-version", min=1, help="Version cible (publiée)"),
    mapping: list[str] = typer.Option(
        [], "--map", help="ancienne_etape=nouvelle_etape (répétable) : où vont les étapes renommées ou retirées"
    ),
    basin: str = typer.Option(None, "--basin", help="Seulement les parcours de ce bassin"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Montrer ce qui serait fait, sans rien changer"),
    by: str = typer.Option(None, "--by", help="E-mail de l'administrateur (sinon : l'opérateur système)"),
    as_json: bool = JsonOption,
) -> None:
    """Déplacer les parcours en cours vers une nouvelle version de leur définition (délais conservés)."""
    from services import migration as mig

    try:
        step_map = mig.parse_step_map(mapping)
    except ServiceError as error:
        fail(error.message)

    def progress(report: mig.MigrationReport) -> None:
        if not as_json:
            c = report.counts
            typer.echo(
                f"  tour {report.rounds} : {c['moved']} déplacé(s), {c['refused']} refusé(s), "
                f"{c['failed']} en échec, {c['ready']} en attente",
                err=True,
            )

    async def work(config: Settings) -> None:
        if dry_run:  # the read model only: no Temporal needed, nothing written
            report = mig.plan(
                read_model(config), definition_id=definition, to_version=to_version, step_map=step_map, basin_id=basin
            )
        else:
            service = await service_for(config)
            report = await mig.migrate(
                service,
                definition_id=definition,
                to_version=to_version,
                step_map=step_map,
                basin_id=basin,
                actor=by_actor(service.engine, by, "migrations") if by else OPERATOR,
                on_progress=progress,
            )

        def text() -> str:
            c = report.counts
            head = (
                f"{'Simulation — ' if dry_run else ''}{definition} vers la version {to_version} : "
                f"{c['total']} parcours en cours sur une autre version"
            )
            lines = [head]
            for move in report.pathways:
                landing = ", ".join(
                    f"{lg['from']} → {lg['to']}" if lg["from"] != lg["to"] else lg["to"] for lg in move.landings
                )
                where = ", ".join(move.where) or "—"
                state = {"ready": "déplaçable", "moved": "déplacé", "refused": "refusé", "failed": "en échec"}
                line = f"  {move.pathway_id}  v{move.from_version}  {move.basin_id:<12} {where}  [{state[move.status]}]"
                if move.status in ("ready", "moved") and landing:
                    line += f"  → {landing}"
                lines.append(line)
                lines += [f"      {reason}" for reason in move.reasons + move.notes]
            if dry_run:
                lines.append(f"{c['ready']} déplaçable(s), {c['refused']} refusé(s) ; rien n'a été modifié.")
            else:
                lines.append(f"{c['moved']} déplacé(s), {c['refused']} refusé(s), {c['failed']} en échec.")
            return "\n".join(lines)

        emit({**report.as_dict(), "dry_run": dry_run}, as_json, text)
        if not dry_run and report.counts["failed"]:
            raise ServiceError(f"{report.counts['failed']} parcours n'ont pas pu être déplacés : relancez la commande.")

    run_async(work)


# --- Tasks ----------------------------------------------------------------------------------


@tasks_app.command("list")
def tasks_list(
    org: str = typer.Option(None, "--org"),
    status: str = typer.Option("open", "--status", help="open, done, skipped, cancelled"),
    page: int = typer.Option(1, "--page", min=1),
    as_json: bool = JsonOption,
) -> None:
    """Lister les tâches (par échéance), d'une organisation ou de toutes."""
    config = settings()
    tasks = q.list_tasks(read_model(config), organisation_id=org, status=status, limit=50, offset=(page - 1) * 50)
    rows = [t.model_dump(mode="json") for t in tasks]
    emit(
        rows,
        as_json,
        lambda: (
            "\n".join(
                f"{t['id']}  {t['organisation_id']:<14} {t['sla'] or '-':<9} {paris(t['due_at']):<16}  {t['title']}"
                for t in rows
            )
            or "Aucune tâche."
        ),
    )
    finish(0)


@tasks_app.command("complete")
def tasks_complete(
    task_id: str,
    by: str = typer.Option(..., "--by", help="E-mail de l'utilisateur"),
    outcome: str = typer.Option(..., "--outcome"),
    data: str = typer.Option("{}", "--data", help="Réponses du formulaire en JSON"),
    request_id: str = request_id_option(),
    as_json: bool = JsonOption,
) -> None:
    """Terminer une tâche avec une issue et les réponses du formulaire."""
    request = request_id_of(request_id)
    try:
        form = json.loads(data)
        if not isinstance(form, dict):
            raise ValueError("un objet {…} est attendu")
    except ValueError as error:
        fail(f"--data n'est pas un objet JSON valide ({error})")

    async def work(config: Settings) -> None:
        actor = by_actor(read_model(config), by, "tasks")  # before reaching Temporal
        service = await service_for(config)
        try:
            result = await service.complete_task(
                task_id=task_id, actor=actor, outcome=outcome, data=form, request_id=request
            )
        except ServiceError as error:
            raise retry_hint(error, request) from None
        emit(
            result.model_dump(mode="json"),
            as_json,
            lambda: result.message + "".join(f"\n  ouvert : {i}" for i in result.opened),
        )

    run_async(work)


# --- Escalations ----------------------------------------------------------------------------


@escalations_app.command("list")
def escalations_list(
    basin: str = typer.Option(None, "--basin"),
    status: str = typer.Option("open", "--status", help="open, decided, resolved"),
    as_json: bool = JsonOption,
) -> None:
    """Lister les escalades (ordre du jour des GTO)."""
    config = settings()
    rows = [e.model_dump(mode="json") for e in q.list_escalations(read_model(config), basin_id=basin, status=status)]
    emit(
        rows,
        as_json,
        lambda: (
            "\n".join(
                f"{e['id']}  {e['basin_id']:<16} niveau {e['level']}  {e['step_id']}  depuis le {paris(e['opened_at'])}"
                for e in rows
            )
            or "Aucune escalade."
        ),
    )
    finish(0)


@escalations_app.command("decide")
def escalations_decide(
    escalation_id: str,
    by: str = typer.Option(..., "--by"),
    action: str = typer.Option(..., "--action", help="reassign, extend, add_step, close, unblock"),
    note: str = typer.Option(None, "--note"),
    organisation: str = typer.Option(None, "--organisation"),
    extend_by: str = typer.Option(None, "--extend-by", help="ex. « 5 working days » ou PT1H"),
    module: str = typer.Option(None, "--module"),
    exit_reason: str = typer.Option(None, "--exit-reason"),
    request_id: str = request_id_option(),
    as_json: bool = JsonOption,
) -> None:
    """Décision du GTO sur une escalade."""
    request = request_id_of(request_id)

    async def work(config: Settings) -> None:
        actor = by_actor(read_model(config), by, "escalations")  # before reaching Temporal
        service = await service_for(config)
        try:
            result = await service.decide_escalation(
                escalation_id=escalation_id,
                actor=actor,
                action=action,
                note=note,
                organisation_id=organisation,
                extend_by=extend_by,
                module_id=module,
                exit_reason=exit_reason,
                request_id=request,
            )
        except ServiceError as error:
            raise retry_hint(error, request) from None
        emit(result.model_dump(mode="json"), as_json, lambda: result.message)

    run_async(work)


# --- Patches of the interpreter -------------------------------------------------------------


@app.command()
def patches(as_json: bool = JsonOption) -> None:
    """Parcours en cours par patch de l'interpréteur : un patch se retire quand plus aucun n'est « sans »."""
    from services.temporal import connect
    from workflows.patches import running_per_patch

    async def work(config: Settings) -> None:
        try:
            client = await connect(config.temporal_address, config.temporal_namespace)
        except RuntimeError:
            raise ServiceError(f"serveur Temporal injoignable à {config.temporal_address}", "conflict") from None
        usage = await running_per_patch(client, task_queue=config.task_queue)
        emit(
            [vars(u) for u in usage],
            as_json,
            lambda: "\n".join(
                f"{u.patch_id}  avec : {u.running_with}  sans : {u.running_without}  — {u.description}" for u in usage
            ),
        )

    run_async(work)


# --- Incidents ------------------------------------------------------------------------------


async def incidents_service(config: Settings) -> PathwayService:
    """The service without the read model's schema check: incidents are read from Temporal, and
    a read model that refuses writes is itself an incident (the retry's audit then goes to the log)."""
    from services.temporal import connect

    missing = missing_data_folder(config)
    if missing:
        fail(missing)
    try:
        client = await connect(config.temporal_address, config.temporal_namespace)
    except RuntimeError:
        raise ServiceError(
            f"serveur Temporal injoignable à {config.temporal_address} : lancez `parcours dev` ou réglez PARCOURS_TEMPORAL_ADDRESS.",
            "conflict",
        ) from None
    return PathwayService.from_settings(client, engine_for(config.resolved_database_url), config)


@incidents_app.command("list")
def incidents_list(
    page: int = typer.Option(1, "--page", min=1, help="Page (25 incidents par page)"), as_json: bool = JsonOption
) -> None:
    """Parcours en incident : écriture refusée par la base de lecture, ou traitement en échec."""
    from services import incidents

    async def work(config: Settings) -> None:
        service = await incidents_service(config)
        listed = await incidents.list_incidents(service, page=page, page_size=25)

        def text() -> str:
            if not listed.items:
                return "Aucun incident."
            pages = f" (page {listed.page}/{listed.pages})" if listed.pages > 1 else ""
            lines = [f"{listed.total} incident(s){pages} :"]
            for i in listed.items:
                line = f"  {i.pathway_id}  {i.kind_label}  depuis le {paris(i.since)}  essai n° {i.attempts}"
                lines.append(line + (f"  prochain essai le {paris(i.next_retry)}" if i.next_retry else ""))
                lines.append(f"      {i.error}")
            lines.append("Heures de Paris. Relancer : parcours incidents retry IDENTIFIANT")
            return "\n".join(lines)

        emit(listed.as_dict([i.as_dict() for i in listed.items]), as_json, text)

    run_async(work)


@incidents_app.command("retry")
def incidents_retry(
    pathway_id: str,
    by: str = typer.Option(None, "--by", help="E-mail de l'administrateur (sinon : l'opérateur système)"),
    as_json: bool = JsonOption,
) -> None:
    """Relancer un parcours en incident : nouvel essai sans attendre (tracé dans le journal d'audit)."""
    from sqlalchemy.exc import SQLAlchemyError

    from services import incidents

    async def work(config: Settings) -> None:
        service = await incidents_service(config)
        try:
            actor = by_actor(service.engine, by, "incidents") if by else OPERATOR
        except SQLAlchemyError:
            raise ServiceError(
                "base de lecture injoignable : --by ne peut pas être vérifié ; relancez sans --by (opérateur).",
                "conflict",
            ) from None
        message = await incidents.retry(service, pathway_id=pathway_id, actor=actor)
        emit({"pathway_id": pathway_id, "message": message}, as_json, lambda: message)

    run_async(work)


# --- Retention ------------------------------------------------------------------------------


@app.command()
def retention(
    apply: bool = typer.Option(False, "--apply", help="Anonymiser (sinon : simple liste)"), as_json: bool = JsonOption
) -> None:
    """Anonymiser les personnes dont tous les parcours sont clos depuis plus que la durée de conservation,
    et les inscrits des rencontres passées depuis plus d'un an."""
    from store.retention import anonymise, anonymise_registrations, expired_persons, expired_registrations

    engine = read_model(settings())
    expired, registrations = expired_persons(engine), expired_registrations(engine)
    count = anonymise(engine, person_ids=expired) if apply else 0
    erased = anonymise_registrations(engine, registration_ids=registrations) if apply else 0
    emit(
        {
            "expired": len(expired),
            "anonymised": count,
            "registrations": len(registrations),
            "registrations_anonymised": erased,
        },
        as_json,
        lambda: (
            f"{len(expired)} personne(s) et {len(registrations)} inscription(s) à des rencontres à anonymiser"
            + (f", {count} personne(s) et {erased} inscription(s) anonymisées" if apply else " (relancer avec --apply)")
        ),
    )
    finish(0)


# --- Evaluation -----------------------------------------------------------------------------


@app.command("evaluation-refresh")
def evaluation_refresh(as_json: bool = JsonOption) -> None:
    """Recalculer maintenant les chiffres de l'évaluation des parcours (les workers le font toutes les heures)."""
    from services import evaluation_facts

    engine = read_model(settings())
    started = time.monotonic()
    count = evaluation_facts.refresh(engine, now=q.now())
    seconds = time.monotonic() - started
    emit(
        {"facts": count, "seconds": round(seconds, 1)},
        as_json,
        lambda: f"Chiffres de l'évaluation recalculés : {count} agrégats en {seconds:.1f} s.",
    )
    finish(0)


# --- Rebuild --------------------------------------------------------------------------------


@app.command()
def rebuild(
    force: bool = typer.Option(False, "--force", help="Compléter une base qui contient déjà des données"),
    as_json: bool = JsonOption,
) -> None:
    """Reconstruire la base de lecture des parcours en cours depuis Temporal (rien n'est supprimé)."""
    from services.rebuild import RebuildRefused, RebuildSummary
    from services.rebuild import rebuild as rebuild_read_model

    def progress(done: int, total: int) -> None:
        typer.echo(f"Parcours {done}/{total}", err=True)

    async def work(config: Settings) -> None:
        service = await service_for(config)
        try:
            summary: RebuildSummary = await rebuild_read_model(
                service.client, service.engine, force=force, progress=progress, task_queue=config.task_queue
            )
        except RebuildRefused as error:
            raise ServiceError(error.message, "conflict") from None
        emit(summary.as_dict(), as_json, summary.text)
        if summary.failed:
            finish(1)

    run_async(work)


# --- Users ----------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    email: str,
    name: str = typer.Option(..., "--name", help="Nom affiché"),
    organisation: str = typer.Option(..., "--organisation", help="Identifiant de l'organisation"),
    role: str = typer.Option(..., "--role", help="caseworker, gto_lead, designer, admin"),
    basin: str = typer.Option(None, "--basin", help="Bassin (animateur·rice de GTO)"),
    as_json: bool = JsonOption,
) -> None:
    """Créer un compte (sans mot de passe : `parcours users set-password` ou lien par e-mail)."""
    engine = read_model(settings())
    try:
        user = administration.create_user(
            engine, actor=OPERATOR, email=email, name=name, organisation=organisation, role=role, basin=basin
        )
    except ServiceError as error:
        fail(error.message)
    emit(
        {"id": user.id, "email": user.email, "role": user.role, "organisation": user.organisation_id},
        as_json,
        lambda: f"Compte {user.email} créé ({administration.ROLES[user.role]}, {user.organisation_id}).",
    )
    finish(0)


@users_app.command("set-password")
def users_set_password(
    email: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Lire le mot de passe sur l'entrée standard"),
) -> None:
    """Définir le mot de passe d'un utilisateur (haché avec argon2)."""
    from services.identity import set_password  # ends the user's open sessions and API tokens

    config = settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Mot de passe", hide_input=True, confirmation_prompt=True)
    try:
        set_password(read_model(config), email=email, password=password)
    except ValueError as error:
        fail(str(error))
    typer.echo(f"Mot de passe de {email} enregistré.")
    finish(0)


def main() -> None:
    from worker.cli_fr import install

    install()  # click's and typer's own messages (usage errors, help) in French
    try:
        app()
    except SystemExit as exit_:
        finish(exit_.code if isinstance(exit_.code, int) else 1)
    finish(0)


if __name__ == "__main__":
    main()
