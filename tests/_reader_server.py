"""A workshop server (``python -m medadv.reader_app.server serve``) started in its own process on the loopback
interface, for the tests: a fresh port, bounded waits, always stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

LIB = Path(__file__).resolve().parents[1] / "lib"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """One server process on 127.0.0.1 serving ``run_dir``; ``stop()`` or ``kill()`` ends it."""

    def __init__(self, run_dir: Path, port: int | None = None, extra: Sequence[str] = ()) -> None:
        self.run_dir, self.port = run_dir, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=f"{LIB}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "medadv.reader_app.server",
                "serve",
                str(run_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.info = self._announcement()
        self.token = self.info["instructor_token"]
        self._wait_healthy()

    def _announcement(self) -> dict:
        """The JSON line the server prints at start (read by a thread, so that a silent server cannot hang us)."""
        found: list[dict] = []
        done = threading.Event()

        def reader() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("{") and not found:
                    found.append(json.loads(line))
                    done.set()
            done.set()

        threading.Thread(target=reader, daemon=True).start()
        done.wait(START_TIMEOUT_S)
        if not found:
            self.kill()
            raise AssertionError(f"server did not start: {''.join(self.lines)}")
        return found[0]

    def _wait_healthy(self) -> None:
        for _ in range(200):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError("server did not answer /healthz within 20 s")

    def instructor(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def links(self, count: int) -> list[tuple[str, str]]:
        """Create ``count`` participant links; (reader, token) of each new one."""
        res = httpx.post(f"{self.url}/api/instructor/links", json={"count": count}, headers=self.instructor())
        assert res.status_code == 201, res.text
        created = set(res.json()["created"])
        return [
            (link["reader"], link["url"].rstrip("/").rsplit("/", 1)[1])
            for link in res.json()["links"]
            if link["reader"] in created
        ]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
