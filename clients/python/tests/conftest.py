"""Starts a real ``kyu serve`` for the tests: a fresh SQLite file in a temp directory,
a kyu.toml with command kinds the tests use, the HTTP API on a port the OS picks (read
back from kyu's start line), and tokens made with ``kyu tokens create``. The binary:
``KYU_BIN``, else the workspace's target/debug/kyu (``cargo build -p kyu-cli``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

KYU_BIN = os.environ.get("KYU_BIN") or str(Path(__file__).resolve().parents[3] / "target" / "debug" / "kyu")

DEFAULT_TOML = """
[queues.default]
concurrency = 4

# result = the args (stdin), so a test sees its job run end to end
[jobs.echo]
command = ["sh", "-c", "cat; echo"]
result_from_stdout = true

[jobs.fail]
command = ["sh", "-c", "echo boom >&2; exit 3"]

[jobs.sleep]
command = ["sleep", "60"]
stop_grace = "1s"
"""


class KyuServer:
    """A running ``kyu serve``: its ``url``, an ``admin`` token, ``token()`` for more."""

    def __init__(self, toml: str = DEFAULT_TOML, env: dict[str, str] | None = None) -> None:
        if not Path(KYU_BIN).exists():
            raise RuntimeError(f"kyu binary not found at {KYU_BIN}: build it (cargo build -p kyu-cli) or set KYU_BIN")
        self.bin = KYU_BIN
        self.dir = tempfile.mkdtemp(prefix="kyu-py-")
        self.config = os.path.join(self.dir, "kyu.toml")
        with open(self.config, "w") as f:
            f.write(f'database = "sqlite://{self.dir}/kyu.db"\n{toml}')
        self._n = 0
        self.admin = self.token(["admin"])
        self.proc = subprocess.Popen(
            [KYU_BIN, "--config", self.config, "serve", "--http", "127.0.0.1:0"],
            cwd=self.dir,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # kyu prints its start line (with the port it got) on stderr
        log = []
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            log.append(line)
            m = re.search(r"http (\d+\.\d+\.\d+\.\d+:\d+)", line)
            if m:
                self.url = f"http://{m.group(1)}"
                break
        else:
            raise RuntimeError(f"kyu serve exited before listening: {''.join(log)}")
        self.log = log
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def token(self, scopes: list[str], queues: str | None = None) -> str:
        """A new token with these scopes (and queue patterns)."""
        args = [KYU_BIN, "--config", self.config, "tokens", "create", "--json", "--name", f"t{self._n}"]
        self._n += 1
        for s in scopes:
            args += ["--scope", s]
        if queues:
            args += ["--queues", queues]
        out = subprocess.run(args, cwd=self.dir, check=True, capture_output=True, text=True).stdout
        return str(json.loads(out)["token"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[KyuServer]:
    s = KyuServer()
    yield s
    s.stop()
