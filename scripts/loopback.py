"""The benchmarks' local processes: a free loopback port to listen on, waiting until one listens, stopping them all."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30, process: subprocess.Popen | None = None) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`; RuntimeError after `timeout_s`, or as soon as
    `process` (the one that should listen there) has exited: no waiting out the timeout for a start that failed or
    was stopped (Ctrl-C reaches it too)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args[:4]))}... exited ({process.returncode}) before "
                               f"listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def stop_all(processes: list[subprocess.Popen], timeout_s: float = 30) -> None:
    """Terminate every process, the last started first, and kill any still running after `timeout_s`."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
