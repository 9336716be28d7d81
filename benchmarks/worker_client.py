"""Driver side of the benchmark workers: a subprocess spoken to in JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class WorkerError(RuntimeError):
    """A benchmark worker failed to start, crashed, or reported an error."""


def parse_reply(line: str, worker: str) -> dict:
    """Decode one reply line; raise :class:`WorkerError` for bad JSON or ``ok: false``."""
    try:
        reply = json.loads(line)
    except json.JSONDecodeError as err:
        raise WorkerError(f"worker {worker} sent a line that is not JSON: {line[:200]!r}") \
            from err
    if not isinstance(reply, dict) or "ok" not in reply:
        raise WorkerError(f"worker {worker} sent a malformed reply: {line[:200]!r}")
    if not reply["ok"]:
        raise WorkerError(f"worker {worker} failed:\n{reply.get('error', '(no message)')}")
    return reply


class Worker:
    """One long-lived worker process (see :mod:`benchmarks.mace_worker`).

    Its stderr goes to a temporary file whose tail is quoted when it fails.
    """

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str],
                 cwd: str | Path | None = None) -> None:
        self.name = name
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        try:
            self._proc = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr, text=True, env=env, cwd=cwd, bufsize=1)
        except OSError as err:
            self._stderr.close()
            raise WorkerError(f"cannot start worker {name} ({argv[0]}): {err}") from err

    def stderr_tail(self, lines: int = 25) -> str:
        """The last lines the worker wrote to stderr."""
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().splitlines()[-lines:])

    def request(self, message: dict) -> dict:
        """Send one request and wait for its reply."""
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self._proc.wait(timeout=30)
            raise WorkerError(f"worker {self.name} exited (code {code}) during "
                              f"'{message.get('op')}'; its stderr ends with:\n"
                              f"{self.stderr_tail()}")
        return parse_reply(line, self.name)

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not within 30 s."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def worker_env(threads: int, extra_pythonpath: str | None = None) -> dict[str, str]:
    """Environment of a worker: thread counts pinned, optional PYTHONPATH prepended."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    if extra_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (extra_pythonpath, env.get("PYTHONPATH")) if p)
    return env
