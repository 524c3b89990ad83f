"""Whole processes, as operators run them: the `parcours` CLI, a worker killed with SIGKILL and
restarted, the embedded stack stopped and started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlmodel import select

from store import models
from store.db import make_engine, session_scope
from tests.conftest import MailSink, Parcours, eventually, prepare_read_model
from tests.flows import timed
from worker.temporal_server import DevServer, free_port

PARCOURS = str(Path(sys.executable).parent / "parcours")
ROOT = Path(__file__).resolve().parents[1]


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PARCOURS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"parcours {' '.join(args)} exited {result.returncode}: {result.stdout}{result.stderr}")
    return result


def spawn(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PARCOURS, *args], env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"process exited {process.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    raise AssertionError(f"'{text}' not seen in {log}:\n{log.read_text(errors='replace')}")


def base_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARCOURS_")}
    env.update(values)
    return env


async def test_worker_killed_mid_pathway_finishes_without_duplicate_emails(
    parcours_without_worker: Parcours,
    temporal_server: DevServer,
    mail_sink: MailSink,
    database_url: str,
    tmp_path: Path,
) -> None:
    parcours = parcours_without_worker
    env = base_env(
        PARCOURS_TEMPORAL_ADDRESS=temporal_server.address,
        PARCOURS_DATABASE_URL=database_url,
        PARCOURS_SMTP_HOST="127.0.0.1",
        PARCOURS_SMTP_PORT=str(mail_sink.port),
        PARCOURS_TASK_QUEUE=parcours.settings.task_queue,
    )
    log = tmp_path / "worker.log"
    first = spawn(env, "worker", log=log)
    wait_for_line(log, "worker prêt", first)
    parcours.publish(
        timed(deadline="PT3S", reminder_before="PT1S", reminder_after="PT1S", level1="PT2S", level2="PT1H")
    )
    pathway_id = await parcours.start("test_timed")
    await eventually(lambda: parcours.mail.keys(pathway_id), what="task assigned e-mail")

    os.killpg(first.pid, signal.SIGKILL)  # mid-pathway: reminders, deadline and escalation pending
    first.wait()
    second = spawn(env, "worker", log=log)
    try:
        await eventually(
            lambda: any(":escalated:1" in k for k in parcours.mail.keys(pathway_id)),
            timeout=60,
            what="escalation after restart",
        )
        task = parcours.open_task(pathway_id, "tache")
        await parcours.service.complete_task(
            task_id=task.id, actor=parcours.service.actor_for("julien.roux@example.org"), outcome="fait", data={}
        )
        pathway = parcours.pathway(pathway_id)
        assert pathway.status == "closed"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    keys = parcours.mail.keys(pathway_id)
    assert len(keys) == len(set(keys)), f"an e-mail was sent twice: {keys}"
    kinds = [k.split(":", 2)[2] for k in keys]
    assert kinds == ["task_assigned:0", "reminder:0", "overdue:0", "reminder:1", "escalated:1"]


def test_cli_and_embedded_stack_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = base_env(
        PARCOURS_DATA_DIR=str(data_dir),
        PARCOURS_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        PARCOURS_UI_PORT=str(free_port()),
        PARCOURS_CAPTURE_SMTP_PORT=str(free_port()),
        PARCOURS_TEMPORAL_UI_PORT=str(free_port()),
        PARCOURS_TASK_QUEUE="parcours",
    )
    # Definitions: validate (exit codes, one line per error), publish, schema.
    broken = tmp_path / "broken.yaml"
    catalog = ROOT / "definitions" / "catalog" / "rsa_socio_pro.yaml"
    broken.write_text(catalog.read_text().replace("next: diagnostic", "next: nulle_part"))
    assert "OK" in cli(env, "definitions", "validate", str(catalog)).stdout
    failed = cli(env, "definitions", "validate", str(catalog), str(broken), check=False)
    assert failed.returncode == 1
    assert "étape « orientation »" in failed.stdout and "étape cible inconnue « nulle_part »" in failed.stdout
    assert json.loads(cli(env, "definitions", "schema").stdout)["title"] == "Parcours pathway definition"

    log = tmp_path / "dev.log"
    stack = spawn(env, "dev", "--no-demo", log=log)
    try:
        wait_for_line(log, "Parcours est prêt", stack)
        assert json.loads(cli(env, "definitions", "publish", str(catalog), "--json").stdout) == {
            "id": "rsa_socio_pro",
            "version": 1,
            "created": False,
        }
        loaded = json.loads(
            cli(env, "territory", "load", str(ROOT / "definitions/territory/haute-savoie.yaml"), "--json").stdout
        )
        assert loaded["basins"] == 4
        person = tmp_path / "person.json"
        person.write_text(
            json.dumps({"first_name": "Inès", "last_name": "Fictive", "nir": "1 84 12 76 451 089 46", "consent": True})
        )
        bad_person = tmp_path / "bad.json"
        bad_person.write_text(
            json.dumps({"first_name": "Inès", "last_name": "Fictive", "nir": "123", "consent": False})
        )
        refused = cli(
            env,
            "pathways",
            "start",
            "--definition",
            "rsa_socio_pro",
            "--basin",
            "chablais",
            "--referent",
            "departement74",
            "--person",
            str(bad_person),
            check=False,
        )
        assert refused.returncode == 1 and "nir" in refused.stderr and "consentement" in refused.stderr
        started = json.loads(
            cli(
                env,
                "pathways",
                "start",
                "--definition",
                "rsa_socio_pro",
                "--basin",
                "chablais",
                "--referent",
                "departement74",
                "--person",
                str(person),
                "--by",
                "camille.martin@example.org",
                "--json",
            ).stdout
        )
        pathway_id = started["pathway_id"]
        inbox = json.loads(cli(env, "tasks", "list", "--org", "departement74", "--json").stdout)
        task_id = next(t["id"] for t in inbox if t["pathway_id"] == pathway_id)
        # The evaluation's figures, computed again at the command line: the pathway is counted.
        refreshed = json.loads(cli(env, "evaluation-refresh", "--json").stdout)
        assert refreshed["facts"] >= 3  # its status, its step reached, its open task
    finally:
        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0

    log = tmp_path / "dev-restarted.log"
    stack = spawn(env, "dev", "--no-demo", log=log)
    try:
        wait_for_line(log, "Parcours est prêt", stack)
        done = json.loads(
            cli(
                env,
                "tasks",
                "complete",
                task_id,
                "--by",
                "camille.martin@example.org",
                "--outcome",
                "orientee",
                "--data",
                json.dumps({"type_orientation": "sociale"}),
                "--json",
            ).stdout
        )
        assert done["opened"]
        detail: dict[str, Any] = json.loads(cli(env, "pathways", "show", pathway_id, "--json").stdout)
        assert [(s["step_id"], s["status"]) for s in detail["steps"]] == [
            ("orientation", "done"),
            ("diagnostic", "open"),
        ]
        assert json.loads(cli(env, "escalations", "list", "--basin", "chablais", "--json").stdout) == []
        denied = cli(
            env,
            "tasks",
            "complete",
            detail["tasks"][-1]["id"],
            "--by",
            "julien.roux@example.org",
            "--outcome",
            "realise",
            check=False,
        )
        assert denied.returncode == 1 and "ne peut pas" in denied.stderr
        engine = make_engine(f"sqlite:///{data_dir / 'parcours.db'}")
        with session_scope(engine) as session:
            subjects = [e.subject for e in session.exec(select(models.CapturedEmail))]
        assert any("Décider l'orientation" in s for s in subjects) and any("Diagnostic" in s for s in subjects)
    finally:
        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0


def test_set_password_from_the_cli_then_sign_in(tmp_path: Path) -> None:
    from admin_ui.security import authenticate

    url = f"sqlite:///{tmp_path / 'parcours.db'}"
    env = base_env(PARCOURS_DATABASE_URL=url, PARCOURS_DATA_DIR=str(tmp_path))
    refused = cli(env, "territory", "load", str(ROOT / "definitions/territory/haute-savoie.yaml"), check=False)
    assert refused.returncode == 1 and "lancez `parcours setup`" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    prepare_read_model(url)  # what `parcours setup` does to the read model
    cli(env, "territory", "load", str(ROOT / "definitions/territory/haute-savoie.yaml"))

    def set_password(email: str, password: str) -> subprocess.CompletedProcess[str]:
        command = [PARCOURS, "users", "set-password", email, "--password-stdin"]
        return subprocess.run(command, env=env, input=password + "\n", capture_output=True, text=True, timeout=60)

    short = set_password("lea.dupont@example.org", "court")
    assert short.returncode == 1 and "au moins 12 caractères" in short.stderr
    unknown = set_password("personne@example.org", "un mot de passe assez long")
    assert unknown.returncode == 1 and "utilisateur inconnu" in unknown.stderr
    done = set_password("lea.dupont@example.org", "un mot de passe assez long")
    assert done.returncode == 0, done.stderr
    engine = make_engine(url)
    user = authenticate(engine, email="lea.dupont@example.org", password="un mot de passe assez long")
    assert user is not None and user.role == "gto_lead"
    assert authenticate(engine, email="lea.dupont@example.org", password="autre chose") is None
