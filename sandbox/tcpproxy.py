"""A plain TCP forwarder, optionally rate-limited: `python -m golive.sandbox.tcpproxy --listen H:P --to H:P [--rate B/s]`.

The sandbox uses it as the `restore-is-source` fault (the restore server's address forwards to the production
primary: a DNS alias or a PgBouncer entry pointing at the wrong cluster, the case only PostgreSQL's
`system_identifier` reveals) and the tests use it in-process (`Forwarder`) as a slow network in front of S3.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time


class Forwarder:
    """Accept on `listen`, forward every connection to `to`; `rate` (bytes/s per direction and connection) throttles."""

    def __init__(self, to: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0), rate: float | None = None):
        self.to = to
        self.rate = rate
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(listen)
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="tcpproxy", daemon=True)

    def start(self) -> Forwarder:
        self._thread.start()
        return self

    def _accept(self) -> None:
        self.srv.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.to, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self.connections += 1
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        chunk = 65536 if self.rate is None else max(1024, int(self.rate / 20))
        try:
            while not self._stop.is_set():
                data = src.recv(chunk)
                if not data:
                    break
                dst.sendall(data)
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self.srv.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
        self._thread.join(2)

    def __enter__(self) -> Forwarder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m golive.sandbox.tcpproxy")
    p.add_argument("--listen", required=True, type=_addr, help="HOST:PORT to accept on")
    p.add_argument("--to", required=True, type=_addr, help="HOST:PORT to forward to")
    p.add_argument("--rate", type=float, default=None, help="bytes per second per direction and connection")
    a = p.parse_args(argv)
    fwd = Forwarder(a.to, a.listen, a.rate).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.2):
        pass
    fwd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
