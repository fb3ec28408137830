"""A StatsD server on 127.0.0.1 for the metric tests: Airflow's ``Stats`` sends to it over UDP."""

from __future__ import annotations

import re
import socket
import threading
import time

STATSD_LINE = re.compile(r"(?P<prefix>airflow\.)?(?P<name>ssis_lb\.[\w.-]+):(?P<value>-?[\d.]+)\|(?P<kind>c|g|ms)")


class StatsdListener:
    """Every datagram's lines; ``metrics()`` the provider's, as (name, value, kind), without Airflow's prefix."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="statsd-listener", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                continue
            self.lines.extend(data.decode().splitlines())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()

    def metrics(self) -> list[tuple[str, float, str]]:
        found = (STATSD_LINE.fullmatch(line) for line in list(self.lines))
        return [(m["name"], float(m["value"]), m["kind"]) for m in found if m]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, float, str]]:
        """The metrics once at least ``count`` have arrived (UDP is asynchronous), or at the timeout."""
        ends = time.monotonic() + timeout
        while len(self.metrics()) < count and time.monotonic() < ends:
            time.sleep(0.01)
        return self.metrics()
