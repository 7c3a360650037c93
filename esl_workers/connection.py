"""ESL connections that read the wire through ``protocol`` and never hang.

Of greenswitch 0.0.19 only the class shapes are kept (``ESLEvent``, ``InboundESL``,
``OutboundSession``, ``NotConnectedError``, its handler registry); what touches the socket is
ours: the read loop (frames from ``protocol.FrameReader``, correct plain/JSON/body parsing),
``connect``, ``send``, ``api``, event dispatch in batches, and ``stop``. Every wait has a timeout,
and when the socket dies every pending command fails at once instead of blocking its greenlet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.queue
import gevent.socket
from greenswitch.esl import ESLEvent, ESLProtocol, InboundESL, NotConnectedError, OutboundSession

from esl_workers.protocol import Event, EventError, Frame, FrameReader, ProtocolError, parse_event

log = logging.getLogger(__name__)

_STOP = object()  # queue sentinel: the reader has finished, drain and exit


class FarmEvent(ESLEvent):  # type: ignore[misc]
    """greenswitch's event type, filled from our parser instead of ``ESLEvent.parse_data``."""

    def __init__(self, headers: dict[str, str], data: str | None = None, event: Event | None = None) -> None:
        self.headers = headers
        self.data = data
        self.event = event

    def parse_data(self, data: str) -> None:
        from esl_workers.protocol import parse_plain_event

        parsed = parse_plain_event(data)
        self.headers = dict(parsed.headers)
        self.data = parsed.body
        self.event = parsed


class FramedProtocol(ESLProtocol):  # type: ignore[misc]
    """Mixin over greenswitch's ESLProtocol: our framing, bounded waits, clean shutdown."""

    command_timeout = 10.0
    batch_size = 256
    label = "esl"
    goodbye = True  # send "exit" on stop (inbound); outbound sockets are closed by FreeSWITCH

    def _framed_init(self) -> None:
        self.closed = gevent.event.Event()
        self.close_reason = ""
        self.bytes_received = 0
        self.frames_received = 0
        self.bad_events = 0
        self.last_read_at = 0.0
        self.on_close: Callable[[str], None] | None = None
        self.batch_handler: Callable[[list[FarmEvent]], None] | None = None

    # ---------------------------------------------------------------- reading

    def receive_events(self) -> None:
        reader = FrameReader()
        reason = "closed by peer"
        try:
            while self._run:
                data = self.sock.recv(65536)
                if not data:
                    if reader.buffered:
                        reason = f"closed by peer mid-frame ({reader.buffered} bytes of a frame unread)"
                    break
                self.bytes_received += len(data)
                self.last_read_at = gevent.get_hub().loop.now()
                for frame in reader.feed(data):
                    self.frames_received += 1
                    self.handle_frame(frame)
                if reader.error is not None:
                    raise reader.error
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            log.warning("%s: %s; dropping the connection", self.label, reason)
        except (OSError, gevent.socket.error) as exc:
            reason = f"socket error: {exc}" if self._run else "stopped"
        finally:
            self._connection_lost(reason if self._run else "stopped")

    def _connection_lost(self, reason: str) -> None:
        self.connected = False
        self._run = False
        self.close_reason = self.close_reason or reason
        pending, self._commands_sent = self._commands_sent, []
        for waiter in pending:
            waiter.set_exception(NotConnectedError(reason))
        self._auth_request_event.set()  # a connect() waiting for auth wakes up and sees connected=False
        self._close_socket()
        self._esl_event_queue.put(_STOP)
        self.closed.set()
        if self.on_close is not None:
            try:
                self.on_close(reason)
            except Exception:
                log.exception("%s: on_close hook failed", self.label)

    def _close_socket(self) -> None:
        sock = getattr(self, "sock", None)
        if sock is None:
            return
        # shutdown() sends the FIN even if another file object still holds the descriptor.
        for close in (lambda: sock.shutdown(gevent.socket.SHUT_RDWR), sock.close):
            try:
                close()
            except OSError:
                pass

    def handle_frame(self, frame: Frame) -> None:
        ctype = frame.content_type
        if ctype == "auth/request":
            self._auth_request_event.set()
        elif ctype in ("command/reply", "api/response"):
            event = FarmEvent(dict(frame.headers))
            event.data = frame.headers.get("Reply-Text", "") if ctype == "command/reply" else frame.body
            if not self._commands_sent:
                log.warning("%s: %s with no command waiting for it: %r", self.label, ctype, event.data[:120])
                return
            self._commands_sent.pop(0).set(event)
        elif ctype in ("text/event-plain", "text/event-json"):
            try:
                parsed = parse_event(frame)
            except EventError as exc:
                self.bad_events += 1
                log.warning("%s: unreadable event dropped (%s): %r", self.label, exc, frame.body[:200])
                return
            self._esl_event_queue.put(FarmEvent(dict(parsed.headers), parsed.body, parsed))
        elif ctype == "text/disconnect-notice":
            event = FarmEvent(dict(frame.headers), frame.body)
            if frame.headers.get("Content-Disposition") == "linger":
                self._lingering = True
            self._esl_event_queue.put(event)
        elif ctype == "text/rude-rejection":
            self.close_reason = f"rejected: {frame.body.strip()}"
            self.connected = False
            self._auth_request_event.set()
        else:
            log.warning("%s: frame of unknown type %r dropped", self.label, ctype)

    # ---------------------------------------------------------------- dispatching

    def process_events(self) -> None:
        queue: gevent.queue.Queue = self._esl_event_queue
        while True:
            item = queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self.batch_size:
                try:
                    more = queue.get_nowait()
                except gevent.queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            try:
                self.dispatch(batch)
            except Exception:
                log.exception("%s: event batch handler failed", self.label)
            if stop:
                return

    def dispatch(self, batch: list[FarmEvent]) -> None:
        """Hand a batch to ``batch_handler`` if set, else each event to greenswitch-style handlers."""
        if self.batch_handler is not None:
            self.batch_handler(batch)
            return
        for event in batch:
            headers = event.headers
            if headers.get("Content-Type") == "text/disconnect-notice":
                handlers = self.event_handlers.get("DISCONNECT")
            elif headers.get("Event-Name") == "CUSTOM":
                handlers = self.event_handlers.get(headers.get("Event-Subclass"))
            else:
                handlers = self.event_handlers.get(headers.get("Event-Name"))
            if not handlers:
                handlers = self.event_handlers.get("*")
            for handler in handlers or ():
                self._safe_exec_handler(handler, event)

    # ---------------------------------------------------------------- writing

    def send(self, data: str, timeout: float | None = None) -> FarmEvent:
        """Send one command and wait for its reply; a reply that never comes closes the connection."""
        if not self.connected:
            raise NotConnectedError(self.close_reason or "not connected")
        waiter: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._commands_sent.append(waiter)
        try:
            self.sock.sendall((data + "\n\n").encode())
        except OSError as exc:
            self._connection_lost(f"socket error on send: {exc}")
            raise NotConnectedError(str(exc)) from exc
        try:
            return waiter.get(timeout=timeout or self.command_timeout)  # type: ignore[no-any-return]
        except gevent.Timeout:
            # Replies are matched by order: once one is missing the stream cannot be trusted.
            self._connection_lost(f"no reply to {data.splitlines()[0]!r} within {timeout or self.command_timeout}s")
            raise NotConnectedError(self.close_reason) from None

    def stop(self, timeout: float = 2.0) -> None:
        """Say goodbye if possible, close the socket, and make sure no greenlet is left running."""
        if self.connected and self.goodbye:
            try:
                self.send("exit", timeout=min(timeout, 1.0))
            except Exception:
                pass
        self._run = False
        self._close_socket()
        greenlets = [g for g in (self._receive_events_greenlet, self._process_events_greenlet) if g is not None]
        if greenlets:
            gevent.joinall(greenlets, timeout=timeout)
            for g in greenlets:
                if not g.dead:
                    g.kill(block=True, timeout=timeout)
        if not self.closed.is_set():
            self._connection_lost("stopped")


class FarmInboundESL(FramedProtocol, InboundESL):  # type: ignore[misc]
    """An inbound connection to one node's mod_event_socket (connect, auth, then commands/events)."""

    def __init__(self, host: str, port: int, password: str, timeout: float = 5.0, label: str = "") -> None:
        InboundESL.__init__(self, host, port, password, timeout=timeout)
        self._framed_init()
        self.label = label or f"esl {host}:{port}"

    def connect(self) -> None:
        """Open the socket, wait for auth/request, authenticate; every step bounded by ``timeout``."""
        try:
            self.sock = gevent.socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise NotConnectedError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.sock.settimeout(None)
        self.connected = True
        self.start_event_handlers()
        if not self._auth_request_event.wait(timeout=self.timeout):
            self.stop(timeout=1.0)
            raise NotConnectedError(f"no auth/request from {self.host}:{self.port} within {self.timeout}s")
        if not self.connected:
            reason = self.close_reason or "closed before authentication"
            self.stop(timeout=1.0)
            raise NotConnectedError(reason)
        reply = self.send(f"auth {self.password}", timeout=self.timeout)
        if not str(reply.data).startswith("+OK"):
            self.stop(timeout=1.0)
            raise NotConnectedError(f"authentication refused: {reply.data}")

    def api(self, command: str, timeout: float | None = None) -> str:
        """Run ``api <command>`` and return the response body."""
        return str(self.send(f"api {command}", timeout=timeout).data)


class FarmOutboundSession(FramedProtocol, OutboundSession):  # type: ignore[misc]
    """One call's outbound socket (FreeSWITCH connected to us), with the framing fixed."""

    def __init__(self, client_address: Any, sock: Any) -> None:
        ESLProtocol.__init__(self)
        self._framed_init()
        self.sock = sock  # no makefile(): an open file object keeps the descriptor alive after close()
        self.connected = True
        self.session_data: dict[str, str] | None = None
        self.expected_events: dict[str, Any] = {}
        self._outbound_connected = False
        self.label = f"ivr {client_address}"
        self.start_event_handlers()

    def connect(self) -> dict[str, str]:
        """Send ``connect``; the reply (no Content-Length, Content-Type last) is the channel data."""
        reply = self.send("connect")
        self.session_data = dict(reply.headers)
        self._outbound_connected = True
        return self.session_data
