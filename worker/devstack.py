"""`parcours dev`: the whole thing on one machine. Temporal dev server (SQLite file, WAL), the
SMTP capture, the worker, the admin UI and demo data; Ctrl-C stops it all, and starting again
resumes every pathway where it was (Temporal and the read model both live in the data dir)."""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from admin_ui.app import create_app
from parcours.settings import Settings
from services import evaluation_facts
from services.administration import where_emails_go
from services.pathways import PathwayService
from store import queries as q
from store.db import engine_for
from store.migrations import upgrade_to_head
from worker.demo import DEMO_PASSWORD, ensure_demo_passwords, load_reference_data, seed_demo_pathways
from worker.mail_capture import start_capture
from worker.runner import build_worker
from worker.temporal_server import DevServer


async def run_dev(settings: Settings, *, demo: bool = True) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    host, _, port = settings.temporal_address.rpartition(":")
    server = DevServer(
        port=int(port),
        db_file=settings.data_dir / "temporal.db",
        ui_port=settings.temporal_ui_port,
        log_file=settings.data_dir / "temporal.log",
    )
    say(f"Démarrage du serveur Temporal ({settings.temporal_address}, données : {settings.data_dir}/temporal.db)…")
    client = await server.start()
    capture = None
    try:
        engine = engine_for(settings.resolved_database_url)
        say(upgrade_to_head(engine).describe())  # a SchemaError (RuntimeError) stops the stack with its message
        say(where_emails_go(settings))  # captured here, or sent to which SMTP host
        if settings.uses_smtp_capture:
            capture = start_capture(engine, port=settings.capture_smtp_port)
            settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": settings.capture_smtp_port})
        published = load_reference_data(engine, demo_definitions=demo)
        say("Territoire Haute-Savoie chargé ; catalogue : " + ", ".join(f"{i} v{v}" for i, v, _ in published))
        if settings.mode == "dev" and ensure_demo_passwords(engine):
            say(f"Comptes de démonstration : mot de passe « {DEMO_PASSWORD} » (voir le README)")
        worker = build_worker(client, engine=engine, settings=settings)
        ui = uvicorn.Server(
            uvicorn.Config(
                create_app(engine, settings, client=client),
                host=settings.ui_host,
                port=settings.ui_port,
                log_level="warning",
                proxy_headers=False,  # the client address comes from PARCOURS_TRUSTED_PROXY_HEADER only
            )
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker:
            ui_task = asyncio.create_task(ui.serve())
            if demo:
                service = PathwayService.from_settings(client, engine, settings)
                started = await seed_demo_pathways(service)
                if started:
                    say(f"{len(started)} parcours de démonstration démarrés : {', '.join(started)}")
                    # Their evaluation, without waiting for the hour (on a thread: the UI keeps answering).
                    await asyncio.to_thread(evaluation_facts.refresh, engine, now=q.now())
            say(
                f"Parcours est prêt : {settings.public_url}  (Temporal UI : http://127.0.0.1:{settings.temporal_ui_port})"
            )
            say("Ctrl-C pour arrêter ; au prochain démarrage, chaque parcours reprend où il en était.")
            await stop.wait()
            say("Arrêt en cours…")
            ui.should_exit = True
            await ui_task
    finally:
        if capture is not None:
            capture.stop()
        server.stop()
        say("Arrêté.")


def say(message: str) -> None:
    print(f"[parcours] {message}", flush=True)
