"""A loopback TCP proxy that a test can switch off and on, to stage database outages.

Stopping the machine's PostgreSQL would break every other test running beside us, so a
server under test talks to PostgreSQL through this proxy instead. ``down()`` closes the
listening socket and cuts every open connection — new connects are refused and pooled
connections die, as when PostgreSQL restarts — and ``up()`` listens again on the same port.
``hold_commit()`` freezes one connection just before a ``COMMIT`` reaches the database, so a
test can cut it with a transaction certainly open and uncommitted.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Hold:
    """Stop forwarding a connection's ``at`` bytes once it has sent ``after`` bytes."""

    after: bytes
    at: bytes
    held: threading.Event = field(default_factory=threading.Event)
    armed: set = field(default_factory=set)


class TcpProxy:
    """``with TcpProxy(5432) as proxy: ... proxy.down() ... proxy.up()``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, listening: bool = True):
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._hold: _Hold | None = None
        self.accepted = 0
        # reserve a port now so that up() after down() comes back on the same one
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._serve(self._listener)
        if not listening:
            self.down()

    # -- switching -------------------------------------------------------------------------

    def up(self) -> None:
        """Listen again on the same port."""
        with self._lock:
            if self._listener is not None:
                return
            self._listener = self._listen(self.port)
        self._serve(self._listener)

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            _kill(listener)
        for sock in conns:
            _kill(sock)

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def hold_commit(self, after: bytes) -> threading.Event:
        """Freeze the first connection that sends ``after`` and then ``COMMIT``; the event fires when it is frozen."""
        self._hold = _Hold(after=after, at=b"COMMIT")
        return self._hold.held

    def close(self) -> None:
        self.down()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # the cut connections linger in TIME_WAIT on our port; without this up() could not rebind
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        return sock

    def _serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept_loop, args=(listener,), name=f"tcp-proxy-{self.port}", daemon=True).start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # down() shut the listener
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _kill(client)
                continue
            with self._lock:
                if self._listener is not listener:  # went down while we connected
                    _kill(client)
                    _kill(upstream)
                    return
                self._conns.update((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and self._should_hold(src, data):
                    return  # leave the socket open and silent until down() cuts it
                dst.sendall(data)
        except OSError:
            pass
        # one side ended: end the other, as a real connection would
        with self._lock:
            self._conns.discard(src)
            self._conns.discard(dst)
        _kill(dst)
        _kill(src)

    def _should_hold(self, conn: socket.socket, data: bytes) -> bool:
        hold = self._hold
        if hold is None or hold.held.is_set():
            return False
        if conn in hold.armed and hold.at in data:
            hold.held.set()
            return True
        if hold.after in data:
            hold.armed.add(conn)
        return False


def _kill(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in accept()/recv() on Linux, where close() alone does not
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
