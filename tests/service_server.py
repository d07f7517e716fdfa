"""A real faceprint server on 127.0.0.1 in a subprocess (``faceprint serve``), for browser and load tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int, *args: str, poll: float = 0.2) -> subprocess.Popen[bytes]:
    """``faceprint serve`` in a new process group, answering /health (asked every ``poll`` seconds), or an error
    naming its output."""
    command = [sys.executable, "-m", "faceprint", "serve", "--data-dir", str(data_dir), "--port", str(port), *args]
    log = open(data_dir / f"server-{port}.log", "ab")  # noqa: SIM115 - the server writes to it until stopped
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {(data_dir / f'server-{port}.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(poll)
    stop_server(process)
    raise RuntimeError("server did not answer /health within 60 s")


def stop_server(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the server's process group (uvicorn's workers too) and wait for it."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextmanager
def running_server(data_dir: Path, *args: str) -> Iterator[str]:
    port = free_port()
    process = start_server(data_dir, port, *args)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)
