"""Immersions (PMSMP): the prescriber's proposal from the pathway page, the host's answer and
every party's signature through their one-time links (pages without an account), the convention
as a PDF. The rules are in services/immersions.py."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from admin_ui.deps import Engine_, Service, User, get_settings, verify_csrf
from admin_ui.web import attachment, flash, form_text, mail_sent, render
from services import immersions
from services.errors import ServiceError
from services.immersions import HostPart, Proposal
from services.pathways import PathwayService
from store import models, views
from store import queries as q

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)
Csrf = [Depends(verify_csrf)]


def _refused(request: Request, error: ServiceError) -> Response:
    return render(
        request, "person/refused.html", status_code=error.status, title="Lien non valide", message=error.message
    )


async def _send(request: Request, sent: immersions.Sent, subject: str, intro: str) -> bool:
    body = (
        f"Bonjour,\n\n{intro}\n\nOuvrez ce lien (valable {immersions.LINK_DAYS} jours, une seule fois) :\n{sent.url}\n\n"
        "Il ne donne accès qu'à cette immersion. Si vous n'attendiez pas ce message, ignorez-le.\n"
    )
    return bool(sent.email) and await mail_sent(get_settings(request), to=sent.email, subject=subject, body=body)


@router.post("/parcours/{pathway_id}/immersions", dependencies=Csrf)
async def propose(request: Request, engine: Engine_, user: User, pathway_id: str) -> Response:
    form = await request.form()
    proposal = Proposal(
        host_id=form_text(form, "host_id"),
        start_date=form_text(form, "start_date"),
        end_date=form_text(form, "end_date"),
        weekly_hours=form_text(form, "weekly_hours"),
        objectives=[v for v in form.getlist("objectives") if isinstance(v, str)],
        accompanying_org=form_text(form, "accompanying_org"),
        renewal_of=form_text(form, "renewal_of"),
    )
    try:
        sent = immersions.propose(engine, user, pathway_id, proposal, public_url=get_settings(request).public_url)
    except ServiceError as error:
        flash(request, f"Immersion non proposée : {error.message}", "error")
        return RedirectResponse(f"/parcours/{pathway_id}#immersions", status_code=303)
    delivered = await _send(
        request,
        sent,
        "[Parcours] Proposition d'immersion professionnelle",
        f"{user.organisation_name} vous propose d'accueillir une personne en immersion professionnelle (PMSMP) "
        f"du {sent.immersion.start_date:%d/%m/%Y} au {sent.immersion.end_date:%d/%m/%Y}.",
    )
    flash(
        request,
        f"Immersion proposée ; lien de réponse {'envoyé à ' + sent.email if delivered else 'non envoyé'} : {sent.url}",
        "success" if delivered else "error",
    )
    return RedirectResponse(f"/parcours/{pathway_id}#immersions", status_code=303)


@router.get("/immersion/reponse/{token}")
def answer_page(request: Request, engine: Engine_, token: str) -> Response:
    try:
        found = immersions.for_host(engine, token)
    except ServiceError as error:
        return _refused(request, error)
    return render(
        request,
        "immersions/answer.html",
        title="Proposition d'immersion",
        found=found,
        token=token,
        values={},
        errors={},
        objectives=immersions.OBJECTIVES,
    )


@router.post("/immersion/reponse/{token}", dependencies=Csrf)
async def answer(request: Request, engine: Engine_, token: str) -> Response:
    form = await request.form()
    accept = form_text(form, "reponse") == "accepter"
    part = HostPart(**{name: form_text(form, name) for name in HostPart.__dataclass_fields__})
    try:
        sent = immersions.answer(engine, token, accept=accept, part=part, public_url=get_settings(request).public_url)
    except ServiceError as error:
        if error.kind != "invalid":
            return _refused(request, error)
        found = immersions.for_host(engine, token)
        return render(
            request,
            "immersions/answer.html",
            status_code=error.status,
            title="Proposition d'immersion",
            found=found,
            token=token,
            values={k: form_text(form, k) for k in HostPart.__dataclass_fields__},
            errors=error.fields,
            alert=error.message,
            objectives=immersions.OBJECTIVES,
        )
    for link in sent:
        await _send(
            request,
            link,
            "[Parcours] Convention d'immersion à signer",
            f"La convention d'immersion professionnelle (PMSMP) est prête : en tant que {immersions.PARTIES[link.party]}, "
            "relisez-la et signez-la avant son début.",
        )
    return render(request, "immersions/answered.html", title="Merci", accepted=accept)


@router.get("/immersion/signature/{token}")
def signature_page(request: Request, engine: Engine_, token: str) -> Response:
    try:
        found = immersions.to_sign(engine, token)
    except ServiceError as error:
        return _refused(request, error)
    return _sign_page(request, found, token)


def _sign_page(request: Request, found: immersions.ToSign, token: str, error: ServiceError | None = None) -> Response:
    """The convention a party reads and signs, again with the refusal of what they sent."""
    return render(
        request,
        "immersions/sign.html",
        status_code=error.status if error else 200,
        title="Convention d'immersion",
        found=found,
        token=token,
        parties=immersions.PARTIES,
        seen_hash=immersions.text_hash(found.text),
        errors=error.fields if error else {},
        alert=error.message if error else None,
    )


@router.post("/immersion/signature/{token}", dependencies=Csrf)
async def sign(request: Request, engine: Engine_, token: str) -> Response:
    form = await request.form()
    try:
        signed = immersions.sign(
            engine,
            token,
            signer_name=form_text(form, "signer_name"),
            agreed=form_text(form, "accord") == "oui",
            seen_hash=form_text(form, "seen_hash"),
            public_url=get_settings(request).public_url,
        )
    except ServiceError as error:
        if error.kind != "invalid":
            return _refused(request, error)
        return _sign_page(request, immersions.to_sign(engine, token), token, error)
    if signed.bilan is not None:
        await _send(
            request,
            signed.bilan,
            "[Parcours] Bilan de l'immersion à remplir",
            "La convention d'immersion est signée par toutes les parties. En tant que tuteur ou tutrice, vous "
            f"remplirez le bilan à la fin de l'immersion (le {signed.immersion.end_date:%d/%m/%Y}) : objectifs "
            "atteints, savoir-être observés, intention d'embauche.",
        )
    return render(
        request,
        "immersions/signed.html",
        title="Convention signée",
        complete=signed.immersion.status == "signed",
        pdf=f"/immersion/signature/{token}/convention.pdf",
    )


@router.get("/immersion/bilan/{token}")
def bilan_page(request: Request, engine: Engine_, token: str) -> Response:
    try:
        row = immersions.for_tutor(engine, token)
    except ServiceError as error:
        return _refused(request, error)
    return _bilan_page(request, row, token)


def _bilan_page(request: Request, row: models.Immersion, token: str, error: ServiceError | None = None) -> Response:
    """The tutor's bilan form, again with the refusal of what they sent."""
    return render(
        request,
        "immersions/bilan.html",
        status_code=error.status if error else 200,
        title="Bilan de l'immersion",
        row=row,
        token=token,
        objectives=immersions.OBJECTIVES,
        errors=error.fields if error else {},
        alert=error.message if error else None,
    )


@router.post("/immersion/bilan/{token}", dependencies=Csrf)
async def bilan(request: Request, engine: Engine_, service: Service, token: str) -> Response:
    form = await request.form()
    entry = immersions.BilanIn(
        objectives_met=[v for v in form.getlist("objectives_met") if isinstance(v, str)],
        skills={key.removeprefix("skill."): form_text(form, key) for key in form if key.startswith("skill.")},
        hiring=form_text(form, "hiring"),
        comment=form_text(form, "comment"),
    )
    try:
        done = immersions.record_bilan(engine, token, entry)
    except ServiceError as error:
        if error.kind != "invalid":
            return _refused(request, error)
        return _bilan_page(request, immersions.for_tutor(engine, token), token, error)
    await _complete_step(service, done)
    return render(
        request,
        "immersions/bilan_done.html",
        title="Merci",
        hiring=done.outcome == "embauche",
        pdf=f"/immersion/bilan/{token}/convention.pdf",
    )


async def _complete_step(service: PathwayService, done: immersions.Bilan) -> None:
    """The bilan ends the pathway's immersion step, as its prescriber: with a hiring intention the
    pathway takes `next_if_hiring`. If the workflow does not answer now, the bilan is kept and the
    prescriber completes the step from its task page (the outcome is shown on the pathway)."""
    row = done.immersion
    task = q.get_task(service.engine, task_id=row.task_id) if row.task_id else None
    prescriber = views.users_by_id(service.engine, [row.prescriber_user]).get(row.prescriber_user)
    if task is None or task.status != "open" or prescriber is None:
        return
    try:
        await service.complete_task(
            task_id=task.id,
            actor=service.actor_for(prescriber.email),
            outcome=done.outcome,
            data={},
            request_id=f"bilan-{row.id}",
        )
    except ServiceError:
        log.exception("immersion %s: its step was not completed from the tutor's bilan", row.id)


@router.get("/immersion/signature/{token}/convention.pdf")
def party_pdf(request: Request, engine: Engine_, token: str) -> Response:
    """A party's convention (and the tutor's bilan once given), before and after signing."""
    try:
        found = immersions.to_sign(engine, token, signed_ok=True)
    except ServiceError as error:
        return _refused(request, error)
    return attachment(immersions.convention_pdf(engine, found.immersion), "application/pdf", "convention-pmsmp.pdf")


@router.get("/immersion/bilan/{token}/convention.pdf")
def tutor_pdf(request: Request, engine: Engine_, token: str) -> Response:
    """The convention with the tutor's bilan, for the tutor, after giving it."""
    try:
        row = immersions.for_tutor(engine, token, given_ok=True)
    except ServiceError as error:
        return _refused(request, error)
    return attachment(immersions.convention_pdf(engine, row), "application/pdf", "convention-et-bilan-pmsmp.pdf")


@router.get("/immersions/{immersion_id}/convention.pdf")
def staff_pdf(engine: Engine_, user: User, immersion_id: str) -> Response:
    row = immersions.readable(engine, user, immersion_id)
    return attachment(immersions.convention_pdf(engine, row), "application/pdf", f"convention-pmsmp-{immersion_id}.pdf")
