"""A first, minimal web front: the dev stack's home page, captured e-mails and a health check.
The caseworker inbox, GTO dashboard and designers' workshop come next."""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from parcours.settings import Settings
from store import models
from store.db import session_scope


def create_app(engine: Engine, settings: Settings) -> FastAPI:
    app = FastAPI(title="Parcours", description="Parcours d'insertion multi-partenaires")

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        with session_scope(engine) as session:
            def count(model: type, *where: object) -> int:
                return int(session.exec(select(func.count()).select_from(model).where(*where)).one())  # type: ignore[call-overload]

            figures = {
                "Parcours en cours": count(models.Pathway, models.Pathway.status != "closed"),
                "Tâches ouvertes": count(models.Task, models.Task.status == "open"),
                "Escalades ouvertes": count(models.Escalation, models.Escalation.status == "open"),
                "E-mails envoyés": count(models.Notification, models.Notification.status == "sent"),
            }
        items = "".join(f"<li><strong>{value}</strong> {escape(label)}</li>" for label, value in figures.items())
        return _page("Parcours", f"""
          <p>Le moteur de parcours fonctionne.</p><ul>{items}</ul>
          <p><a href="/dev/emails">E-mails capturés</a> ·
             <a href="http://127.0.0.1:{settings.temporal_ui_port}/namespaces/default/workflows">Temporal UI</a></p>""")

    @app.get("/dev/emails", response_class=HTMLResponse)
    def captured_emails(page: int = 1) -> str:
        size = 50
        with session_scope(engine) as session:
            rows = session.exec(
                select(models.CapturedEmail).order_by(col(models.CapturedEmail.id).desc()).offset((max(page, 1) - 1) * size).limit(size)
            ).all()
        items = "".join(
            f"<article><h2>{escape(r.subject)}</h2><p>À : {escape(', '.join(r.recipients))} — {r.received_at:%d/%m/%Y %H:%M}</p>"
            f"<pre>{escape(r.body)}</pre></article>"
            for r in rows
        ) or "<p>Aucun e-mail capturé.</p>"
        return _page("E-mails capturés", items + f'<p><a href="?page={page + 1}">Page suivante</a></p>')

    return app


def _page(title: str, body: str) -> str:
    return f"""<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: Marianne, Arial, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem">
<h1>{escape(title)}</h1>{body}</body></html>"""
