"""A fork server for devnet agents: import the agents' code once, fork one process each.

Every agent is a separate process with its own pid, session, log and state, exactly as
``python -m holder_agent`` / ``python -m kos`` would run it; what is shared is only the
import work done before the fork (eth-account, httpx, uvicorn, the agents' modules: about two
seconds of CPU per process, which made ``devnet up --holders 50`` take minutes on two
cores). The server is single-threaded, so forking it is safe; it reads one JSON request
per line on stdin (``{"module": ..., "config": ..., "log": ...}``), answers the child's
pid on stdout, and exits when stdin closes (children are then adopted by init).

Run as ``python -m shardkey.devnet.spawner``; :class:`Spawner` drives it.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from shardkey.errors import ShardKeyError

ENTRY_POINTS = {"holder_agent": "holder_agent.__main__", "kos": "kos.__main__",
                "repairer": "repairer.__main__"}


class SpawnerError(ShardKeyError):
    """The fork server failed or refused a request."""


def _child(module: str, config: str, log: str) -> None:
    """In the forked child: detach, send output to the log, run the agent, never return."""
    code = 1
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        main = importlib.import_module(ENTRY_POINTS[module]).main
        code = int(main(["--config", config]) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Preload the agents, then fork one child per request line until EOF."""
    for name in ENTRY_POINTS.values():
        importlib.import_module(name)
    importlib.import_module("holder_agent.service")
    importlib.import_module("kos.service")
    importlib.import_module("repairer.service")
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        if request.get("module") not in ENTRY_POINTS:
            replies.write(json.dumps({"error": f"unknown module {request.get('module')!r}"}) + "\n")
            replies.flush()
            continue
        pid = os.fork()
        if pid == 0:
            _child(request["module"], request["config"], request["log"])
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        while True:  # reap agents that already exited (a failed start is seen by its pid)
            try:
                done, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if done == 0:
                break


class Spawner:
    """The launcher's side: start the fork server, ask it for agents (thread-safe)."""

    def __init__(self, log: Path, env: dict[str, str]):
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")
        os.chmod(log, 0o600)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "shardkey.devnet.spawner"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, start_new_session=True)
        self._lock = threading.Lock()
        self._ready = False

    def _reply(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise SpawnerError(f"the devnet fork server exited (code {self._proc.poll()}); "
                               f"see {self._log.name}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def spawn(self, module: str, config: Path, log: Path) -> int:
        """Fork ``python -m <module> --config <config>`` with output to ``log``; its pid."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            assert self._proc.stdin is not None
            if not self._ready:
                self._ready = bool(self._reply().get("ready"))
            self._proc.stdin.write(json.dumps({"module": module, "config": str(config),
                                               "log": str(log)}) + "\n")
            self._proc.stdin.flush()
            reply = self._reply()
        if "pid" not in reply:
            raise SpawnerError(str(reply.get("error", reply)))
        return int(reply["pid"])

    def close(self) -> None:
        """Let the server exit (the agents live on)."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        finally:
            self._log.close()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
