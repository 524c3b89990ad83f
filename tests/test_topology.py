"""The production topology, here without Docker (tests/topology.py): the read model on a private
PostgreSQL cluster, the Temporal dev server on its file, an SMTP sink, `parcours setup`, two
`parcours worker` and a `parcours ui` with several uvicorn processes, all real processes.
Also the production compose file, read on paper (CI validates it with `docker-compose config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.topology import Topology, topology_fixture, until  # noqa: F401  (topology_fixture: `topology`)

ROOT = Path(__file__).resolve().parents[1]
CAMILLE = "camille.martin@example.org"  # caseworker, Département: orientation and referent tasks


async def test_a_pathway_goes_on_through_the_api_when_the_worker_running_it_is_killed(topology: Topology) -> None:
    assert [w.running for w in topology.workers] == [True, True]
    assert len(topology.ui_processes()) == topology.ui_workers >= 2

    async with await topology.api(CAMILLE) as camille:
        started = await camille.start_pathway("rsa_socio_pro", basin="annecien")
        assert started.status_code == 201, started.text
        pathway_id = started.json()["pathway_id"]
        orientation = (await camille.open_tasks(pathway_id))["orientation"]
        await until(lambda: topology.smtp.keys(f"{orientation}:"), timeout=30, what="the first task's e-mail")

        done = await camille.complete_task(orientation, "orientee", {"type_orientation": "professionnelle"})
        assert done.status_code == 200, done.text
        diagnostic = (await camille.open_tasks(pathway_id))["diagnostic"]

        # kill -9 the worker holding the pathway in its cache: the other one takes it over.
        holder = await topology.worker_of(pathway_id)
        assert holder is not None, "the pathway ran on neither worker"
        await topology.kill_worker(holder)
        answers = {"frein_logement": "non", "frein_mobilite": "oui", "frein_garde": "non", "frein_sante": "non"}
        done = await camille.complete_task(diagnostic, "realise", answers)
        assert done.status_code == 200, done.text
        assert await topology.worker_of(pathway_id) == 1 - holder

        contrat = (await camille.open_tasks(pathway_id))["contrat"]
        await until(lambda: topology.smtp.keys(f"{contrat}:"), timeout=30, what="an e-mail sent after the kill")
        steps = {t["step_id"]: t["status"] for t in (await camille.pathway(pathway_id)).json()["tasks"]}
        assert steps == {"orientation": "done", "diagnostic": "done", "contrat": "open"}
    keys = topology.smtp.keys(pathway_id)
    assert len(keys) == len(set(keys)), f"an e-mail was sent twice: {keys}"


# --- docker-compose.yml, on paper -------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_temporal_s_production_image_after_its_schema_job() -> None:
    services = compose()["services"]
    images = {name: str(service.get("image", "")) for name, service in services.items()}
    assert not any("auto-setup" in image for image in images.values()), images
    assert images["temporal"].startswith("temporalio/server:")
    schema, namespace = services["temporal-schema"], services["temporal-namespace"]
    assert schema["image"].startswith("temporalio/admin-tools:") and namespace["image"].startswith(
        "temporalio/admin-tools:"
    )
    # Same release for the server and its tools (the schema dirs belong to the server's version).
    assert schema["image"].split(":")[1] == images["temporal"].split(":")[1] == namespace["image"].split(":")[1]

    script = " ".join(schema["command"]) if isinstance(schema["command"], list) else schema["command"]
    for database, schema_dir in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        for step in (
            "create",
            "setup-schema -v 0.0",
            f"update-schema -d /etc/temporal/schema/postgresql/v12/{schema_dir}/versioned",
        ):
            assert f"--db {database} {step}" in script, (database, step)
    assert services["temporal"]["depends_on"]["temporal-schema"] == {"condition": "service_completed_successfully"}
    # The dynamic config file the server is pointed at is the one mounted from deploy/.
    host, container = services["temporal"]["volumes"][0].split(":")[:2]
    config_file = services["temporal"]["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert container == "/etc/temporal/" + config_file.rsplit("/", 1)[0]
    assert yaml.safe_load((ROOT / host / config_file.rsplit("/", 1)[1]).read_text())
    assert "temporal operator namespace create" in " ".join(namespace["command"])

    # Parcours starts once Temporal has its namespace; workers and UI once `parcours setup` ran.
    assert services["setup"]["depends_on"]["temporal-namespace"] == {"condition": "service_completed_successfully"}
    for name in ("worker", "admin-ui"):
        assert services[name]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert int(services["admin-ui"]["environment"]["PARCOURS_UI_WORKERS"]) > 1
