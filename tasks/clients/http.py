"""The HTTP(S) client every HTTPS-speaking check uses: the trust store (system store + an optional extra CA file) and
a small httpx client factory whose timeouts follow the check's remaining budget and whose every exchange (connect,
TLS, request, headers, body) ends at the check's deadline: httpx's own timeouts are per operation, so a server
trickling one byte per read would keep the check's thread (abandoned by the runner at its timeout) and its socket
forever. Also `curl`, the re-run command a check's evidence shows.
"""

from __future__ import annotations

import functools
import os
import shlex
import ssl
import time
from pathlib import Path
from typing import Any

from ..core import RunContext


def trust_context(ca_file: Path | str | None = None, *, http: bool = False) -> ssl.SSLContext:
    """The system trust store plus `ca_file` (PEM), hostname checking on; `http=True`: the one for httpx clients
    (`http_client`), whose ALPN is fixed at HTTP/1.1.

    Shared, never to be modified (a check that needs other settings makes its own context): loading the system
    store costs ~19 ms of CPU, and a run used to load it once per HTTPS check (58 times on the sandbox: over a
    CPU-second). One per CA file's content version (path, inode, mtime, ctime, size): a CA file replaced while
    golive runs is read again. httpcore sets ALPN on its context at every connection, and OpenSSL copies that list
    into each new connection without the GIL: on a context shared by threads, setting it again (even to the same
    value) frees what another thread may be copying. So the HTTP context is set once, at creation, and refuses
    any change; the plain one (TLS probes, STARTTLS) advertises no ALPN at all, as before. The system store is
    versioned the same way (its bundle file and directory, `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured): a CA the
    operating system adds while `golive serve` runs is trusted by the next run, not after a restart."""
    if not ca_file:
        return _trust_context(None, _system_store_version(), http)
    try:
        st = Path(ca_file).stat()
    except OSError:  # let OpenSSL say what is wrong with it
        return _load_trust(str(ca_file), http)
    version = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, *_system_store_version())
    return _trust_context(str(ca_file), version, http)  # (the CA file is added to the system store)


def _system_store_version() -> tuple[object, ...]:
    """Where the system store is and what its bundle file and directory are now (two stats)."""
    paths = ssl.get_default_verify_paths()
    version: list[object] = [paths.cafile, paths.capath]
    for p in (paths.cafile, paths.capath):
        try:
            st = os.stat(p) if p else None
        except OSError:
            st = None
        version += [st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size] if st else [None]
    return tuple(version)


class _Http11Context(ssl.SSLContext):
    """A shared client context whose ALPN is HTTP/1.1, set once (see `trust_context`)."""

    def set_alpn_protocols(self, alpn_protocols: Any) -> None:
        if list(alpn_protocols) != ["http/1.1"]:
            raise ValueError("golive's shared HTTPS context speaks HTTP/1.1 only")
        # already set at creation: setting it again would free the list a concurrent handshake may be copying

    def load_cert_chain(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError("golive's shared HTTPS context holds no client certificate: make a context of your own")


@functools.lru_cache(maxsize=32)
def _trust_context(ca_file: str | None, _version: tuple[object, ...], http: bool) -> ssl.SSLContext:
    return _load_trust(ca_file, http)


def _load_trust(ca_file: str | None, http: bool = False) -> ssl.SSLContext:
    if not http:
        ctx = ssl.create_default_context()
    else:  # create_default_context's settings, on the subclass
        base = ssl.create_default_context()
        ctx = _Http11Context(ssl.PROTOCOL_TLS_CLIENT)
        ctx.options, ctx.verify_flags = base.options, base.verify_flags
        ctx.check_hostname, ctx.verify_mode = True, ssl.CERT_REQUIRED
        ctx.load_default_certs()
        ssl.SSLContext.set_alpn_protocols(ctx, ["http/1.1"])
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


#: the most one HTTP connection of a check may read: a body that size is not an answer but an attack on memory
MAX_HTTP_BYTES = 64 << 20


class _DeadlineBackend:
    """An httpcore network backend whose every operation gets min(its own timeout, what is left until `deadline`)
    and fails once the deadline has passed (a TLS handshake is one operation: CPython bounds it as a whole)."""

    def __init__(self, deadline: float, inner: Any, max_bytes: int = MAX_HTTP_BYTES) -> None:
        self.deadline, self.inner, self.max_bytes = deadline, inner, max_bytes

    def left(self, timeout: float | None, exc: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise exc("the check's deadline passed before the server finished answering")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> _DeadlineStream:
        import httpcore

        return _DeadlineStream(
            self,
            self.inner.connect_tcp(
                host, port, self.left(timeout, httpcore.ConnectTimeout), local_address, socket_options
            ),
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> _DeadlineStream:
        import httpcore

        return _DeadlineStream(
            self, self.inner.connect_unix_socket(path, self.left(timeout, httpcore.ConnectTimeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _DeadlineStream:
    """A connection of _DeadlineBackend: each operation bounded by the deadline, the bytes read counted."""

    def __init__(self, backend: _DeadlineBackend, inner: Any) -> None:
        self.backend, self.inner, self.read_bytes = backend, inner, 0

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        import httpcore

        data = self.inner.read(max_bytes, self.backend.left(timeout, httpcore.ReadTimeout))
        self.read_bytes += len(data)
        if self.read_bytes > self.backend.max_bytes:
            raise httpcore.ReadError(f"the server sent more than {self.backend.max_bytes >> 20} MiB: not read further")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import httpcore

        self.inner.write(buffer, self.backend.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> _DeadlineStream:
        import httpcore

        return _DeadlineStream(
            self.backend,
            self.inner.start_tls(ssl_context, server_hostname, self.backend.left(timeout, httpcore.ConnectTimeout)),
        )

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


def bounded(client: Any, deadline: float, max_bytes: int = MAX_HTTP_BYTES) -> Any:
    """`client` (an httpx.Client) with every exchange ending at `deadline` (time.monotonic()), however slowly the
    server answers, and at most `max_bytes` read per connection. Fails closed: a transport it cannot bound (an
    httpx that changed its internals) raises instead of running unbounded."""
    for transport in (client._transport, *client._mounts.values()):
        if transport is None:  # a NO_PROXY mount: requests go through client._transport
            continue
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise RuntimeError(f"cannot bound the time of {type(transport).__name__} requests: refused")
        pool._network_backend = _DeadlineBackend(deadline, pool._network_backend, max_bytes)
    return client


def http_client(ctx: RunContext, ca_file: Path | str | None = None, *, max_bytes: int = MAX_HTTP_BYTES, **kw: Any):
    """An httpx client: verify against system store + `ca_file`, never follows redirects unless asked,
    timeouts (connect and read) = what is left of the check's budget, and the whole of every exchange bounded by the
    check's deadline (`bounded`)."""
    import httpx

    kw.setdefault("follow_redirects", False)
    return bounded(
        httpx.Client(verify=trust_context(ca_file, http=True), timeout=httpx.Timeout(ctx.remaining), **kw),
        ctx.deadline,
        max_bytes,
    )


def req_timeout(ctx: RunContext):
    """Per-request timeout: what is left of the budget at the time of the call."""
    import httpx

    return httpx.Timeout(ctx.remaining)


def curl(url: str, *, ca_file: Path | str | None = None, method: str = "GET", extra: str = "") -> str:
    """A curl command an SRE can re-run to see the same thing."""
    parts = ["curl", "-sS", "-o", "/dev/null", "-w", "'%{http_code} %{time_starttransfer}s\\n'"]
    if method == "HEAD":
        parts.append("-I")
    elif method != "GET":
        parts += ["-X", method]
    if ca_file:
        parts += ["--cacert", shlex.quote(str(ca_file))]
    if extra:
        parts.append(extra)
    parts.append(shlex.quote(url))
    return " ".join(parts)
