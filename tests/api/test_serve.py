"""`lianxin serve` for real: a uvicorn process with the projections running
in-process, answering commands and read-your-writes queries."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_commands_and_queries(tmp_path):
    port = free_port()
    env = {**os.environ, "LIANXIN_HOME": str(tmp_path / "home"), "LIANXIN_STORE": "sqlite",
           "LIANXIN_PSEUDONYM_KEY": "test-key", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from lianxin.cli import main; main()",
                             "serve", "--port", str(port), "--log-level", "warning"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        r = httpx.post(f"{base}/agents", json={"employee_no": "1001", "name": "Li Na"})
        assert r.status_code == 201, r.text
        r = httpx.post(f"{base}/agents/1001/login", json={"endpoint": "PJSIP/1001"})
        position = r.json()["position"]
        agent = httpx.get(f"{base}/agents/1001", params={"min_position": position}).json()
        assert (agent["state"], agent["endpoint"]) == ("not_ready", "PJSIP/1001")
        status = httpx.get(f"{base}/projections").json()
        assert status["running"] and status["behind"] == 0
        bad = httpx.post(f"{base}/agents/1001/login", content=b"{",
                         headers={"content-type": "application/json"})
        assert (bad.status_code, bad.headers["content-type"]) == (400,
                                                                  "application/problem+json")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == 0  # a clean shutdown: projections and store closed
