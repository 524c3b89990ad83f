"""Upgrading a data folder from release 1.0.0: its own embedded stack (`python -m worker.cli dev`
from the tag's code) runs the demo and moves pathways forward with its own CLI; then the current
`parcours dev` starts on the same folder and ports, migrates the read model and resumes every
pathway, and the current CLI moves one further. The read model on SQLite (in the data folder) and
on PostgreSQL; Temporal's own SQLite file stays in the data folder."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from store.db import make_engine
from tests.conftest import eventually, fresh_postgres_database
from tests.releases import PARCOURS, PYTHON, clean_env, kill_group, release_env, stop, wait_for_line
from worker.temporal_server import free_port

pytestmark = pytest.mark.parametrize("read_model", ["sqlite", "postgresql"])

CASEWORKER = "camille.martin@example.org"


@pytest.fixture
def database_url_or_none(read_model: str) -> Iterator[str | None]:
    """None: the read model in the data folder (SQLite); else a fresh PostgreSQL database."""
    if read_model == "sqlite":
        yield None
    else:
        with fresh_postgres_database("parcours_upgrade") as url:
            yield url


def counts(url: str) -> dict[str, Any]:
    """What must survive the upgrade: rows per table and the pathways' ids."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            figures: dict[str, Any] = {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("person", "pathway", "task", "notification", "pathway_step", "audit_event")
            }
            figures["pathway_ids"] = sorted(connection.execute(text("SELECT id FROM pathway")).scalars())
            return figures
    finally:
        engine.dispose()


async def test_a_v1_0_0_data_folder_upgrades_and_resumes(
    v1_0_0_checkout: Path, database_url_or_none: str | None, tmp_path: Path
) -> None:
    data_dir = tmp_path / ".parcours"
    settings = {
        "PARCOURS_DATA_DIR": str(data_dir),
        "PARCOURS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "PARCOURS_UI_PORT": str(free_port()),
        "PARCOURS_CAPTURE_SMTP_PORT": str(free_port()),
        "PARCOURS_TEMPORAL_UI_PORT": str(free_port()),
    }
    if database_url_or_none is not None:
        settings["PARCOURS_DATABASE_URL"] = database_url_or_none
    url = database_url_or_none or f"sqlite:///{data_dir / 'parcours.db'}"
    v1_env = release_env(v1_0_0_checkout, **settings)
    env = clean_env(**settings)

    def v1_cli(*args: str) -> Any:
        result = subprocess.run(
            [PYTHON, "-m", "worker.cli", *args, "--json"],
            cwd=v1_0_0_checkout,
            env=v1_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"v1.0.0 parcours {' '.join(args)}: {result.stdout}{result.stderr}"
        return json.loads(result.stdout)

    def cli(*args: str) -> Any:
        result = subprocess.run(
            [PARCOURS, *args, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"parcours {' '.join(args)}: {result.stdout}{result.stderr}"
        return json.loads(result.stdout)

    def pathways_with_tasks() -> bool:
        figures = counts(url)
        return figures["pathway"] == 6 and figures["task"] >= 6

    processes: list[subprocess.Popen[bytes]] = []
    try:
        # Release 1.0.0: the demo, two pathways moved forward, stopped with Ctrl-C.
        v1_log = tmp_path / "v1.0.0-dev.log"
        released = subprocess.Popen(
            [PYTHON, "-m", "worker.cli", "dev"],
            cwd=v1_0_0_checkout,
            env=v1_env,
            stdout=v1_log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(released)
        wait_for_line(v1_log, "parcours de démonstration démarrés", released, timeout=180)
        await eventually(pathways_with_tasks, timeout=60, what="the 6 demo pathways and their tasks")
        orientations = sorted(
            (
                t
                for t in v1_cli("tasks", "list")
                if t["definition_id"] == "rsa_socio_pro" and t["step_id"] == "orientation"
            ),
            key=lambda t: t["basin_id"],
        )
        assert [t["basin_id"] for t in orientations] == ["annecien", "chablais"], orientations
        moved, other = orientations
        for task, orientation in ((moved, "socio_professionnelle"), (other, "sociale")):
            done = v1_cli(
                "tasks", "complete", task["id"], "--by", CASEWORKER, "--outcome", "orientee",
                "--data", json.dumps({"type_orientation": orientation}),
            )  # fmt: skip
            assert done["opened"], done
        steps = {s["step_id"]: s["status"] for s in v1_cli("pathways", "show", moved["pathway_id"])["steps"]}
        assert steps == {"orientation": "done", "diagnostic": "open"}
        assert stop(released) == 0, v1_log.read_text(errors="replace")
        before = counts(url)
        assert before["pathway"] == 6

        # The current code on the same folder and ports: the read model migrated, every pathway resumed.
        log = tmp_path / "current-dev.log"
        current = subprocess.Popen(
            [PARCOURS, "dev"], cwd=tmp_path, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        processes.append(current)
        output = wait_for_line(log, "Parcours est prêt", current, timeout=180)
        assert "Base de lecture : base Parcours 1.0 reconnue et marquée révision 0001" in output, output
        assert "parcours de démonstration démarrés" not in output, "the demo was seeded a second time"

        diagnostic = next(
            t for t in cli("tasks", "list", "--org", "departement74") if t["pathway_id"] == moved["pathway_id"]
        )
        assert diagnostic["step_id"] == "diagnostic"
        freins = {f"frein_{name}": "non" for name in ("logement", "mobilite", "garde", "sante")}
        done = cli(
            "tasks", "complete", diagnostic["id"], "--by", CASEWORKER, "--outcome", "realise",
            "--data", json.dumps(freins),
        )  # fmt: skip
        assert done["opened"], done
        # Read-your-writes: `tasks complete` returned once the read model was written.
        detail = cli("pathways", "show", moved["pathway_id"])
        assert [(s["step_id"], s["status"]) for s in detail["steps"]] == [
            ("orientation", "done"),
            ("diagnostic", "done"),
            ("contrat", "open"),
        ]
        assert any(t["step_id"] == "contrat" and t["status"] == "open" for t in detail["tasks"])
        other_steps = {s["step_id"]: s["status"] for s in cli("pathways", "show", other["pathway_id"])["steps"]}
        assert other_steps == {"orientation": "done", "diagnostic": "open"}

        after = counts(url)
        assert after["pathway_ids"] == before["pathway_ids"]
        for table in ("person", "pathway", "task", "notification", "pathway_step", "audit_event"):
            assert after[table] >= before[table], (table, before, after)
        assert after["task"] > before["task"]
        assert stop(current) == 0, log.read_text(errors="replace")
    finally:
        for process in processes:
            if process.poll() is None:
                kill_group(process)
