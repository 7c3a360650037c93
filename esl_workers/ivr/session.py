"""The ``Session`` an IVR script receives: one caller, driven over FreeSWITCH's outbound socket.

Every method blocks the script's greenlet until FreeSWITCH has finished the step (the matching
CHANNEL_EXECUTE_COMPLETE), and raises ``CallEnded`` once the call has left the script (the caller
hung up, or the channel went back to the dialplan: a transfer), so a script never has to check;
the server catches it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.queue

from esl_workers.conferences import room_name
from esl_workers.connection import FarmEvent, FarmOutboundSession

log = logging.getLogger(__name__)


class CallEnded(Exception):
    """The call left the script (hung up, transferred, socket closed): the script simply stops here."""


CS_ROUTING = "2"  # Channel-State-Number is the pending state; Channel-State still says CS_EXECUTE
HANGUP_WAIT = 5.0  # seconds hangup() waits for FreeSWITCH's CHANNEL_HANGUP before the socket is released


class Session:
    """One call inside an IVR script."""

    def __init__(
        self,
        conn: FarmOutboundSession,
        channel: dict[str, str],
        tenant: str = "",
        options: dict[str, Any] | None = None,
        step_timeout: float = 300.0,
    ) -> None:
        self.conn = conn
        self.channel = channel
        self.tenant = tenant
        self.options: dict[str, Any] = options or {}
        self.step_timeout = step_timeout
        self.hung_up = False
        self.transferred = False  # the channel went back to the dialplan: it lives on without the script
        self._hangup_seen = gevent.event.Event()
        self._waiting: tuple[str, gevent.event.AsyncResult] | None = None
        self._digits: gevent.queue.Queue = gevent.queue.Queue()
        self._dtmf_callbacks: list[Callable[[str], Any]] = []
        conn.batch_handler = self._on_events
        conn.on_close = lambda reason: self._ended(f"socket closed: {reason}")

    # ---------------------------------------------------------------- facts about the call

    @property
    def uuid(self) -> str:
        """The channel's uuid, e.g. for logs: ``log.info("caller %s", session.uuid)``."""
        return self.channel.get("Unique-ID") or self.channel.get("variable_uuid", "")

    @property
    def caller(self) -> str:
        """Caller-ID number: ``if session.caller == "1001": ...``."""
        return self.channel.get("Caller-Caller-ID-Number", "")

    @property
    def destination(self) -> str:
        """The number dialled to reach this IVR: ``session.destination == "5000"``."""
        return self.channel.get("Caller-Destination-Number", "")

    # ---------------------------------------------------------------- events

    def _on_events(self, batch: list[FarmEvent]) -> None:
        for event in batch:
            h = event.headers
            name = h.get("Event-Name", "")
            if h.get("Content-Type") == "text/disconnect-notice" or name == "CHANNEL_HANGUP":
                self._hangup_seen.set()
                self._ended("caller hung up")
            elif h.get("Unique-ID", self.uuid) != self.uuid:
                continue
            elif name == "CHANNEL_EXECUTE_COMPLETE" and h.get("Application") == "socket":
                # The socket app ended with the call up: a transfer (ours or anyone's) sent it on. Not
                # CHANNEL_STATE CS_ROUTING: right after myevents FreeSWITCH also sends the states before it.
                self._left_to_dialplan()
            elif name == "DTMF":
                digit = h.get("DTMF-Digit", "")
                self._digits.put(digit)
                for callback in list(self._dtmf_callbacks):
                    try:
                        callback(digit)
                    except Exception:
                        log.exception("call %s: on_dtmf callback failed", self.uuid)
            elif name == "CHANNEL_EXECUTE_COMPLETE" and self._waiting is not None:
                app, result = self._waiting
                if h.get("Application") == app and h.get("Unique-ID", self.uuid) == self.uuid:
                    self._waiting = None
                    result.set(h)
                    if h.get("Channel-State-Number") == CS_ROUTING:
                        # The step sent the call on (a transfer, or a bridge the caller was transferred out
                        # of): known now, before the socket app's end arrives.
                        self._left_to_dialplan()

    def _left_to_dialplan(self) -> None:
        if self.hung_up or self.transferred:
            return
        self.transferred = True
        self._ended("the call was transferred back to the dialplan")

    def _ended(self, why: str) -> None:
        if self.hung_up:
            return
        self.hung_up = True
        if self._waiting is not None:
            self._waiting[1].set_exception(CallEnded(why))
            self._waiting = None
        self._digits.put(None)

    def _check(self) -> None:
        if self.transferred:
            raise CallEnded("the call was transferred back to the dialplan")
        if self.hung_up:
            raise CallEnded("caller hung up")

    def _send(self, command: str) -> Any:
        self._check()
        try:
            return self.conn.send(command)
        except Exception as exc:
            self._ended(str(exc))
            raise CallEnded(str(exc)) from exc

    # ---------------------------------------------------------------- the IVR author's verbs

    def execute(self, app: str, arg: str = "", wait: bool = True) -> dict[str, str]:
        """Run any dialplan application and wait for it: ``session.execute("sleep", "500")``."""
        self._check()
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()
        if wait:
            self._waiting = (app, result)
        lines = ["sendmsg", "call-command: execute", f"execute-app-name: {app}"]
        if arg:
            lines.append(f"execute-app-arg: {arg}")
        lines.append("event-lock: true")
        self._send("\n".join(lines))
        if not wait:
            return {}
        try:
            reply: dict[str, str] = result.get(timeout=self.step_timeout)
        except gevent.Timeout:
            self._waiting = None
            raise TimeoutError(f"{app} did not finish within {self.step_timeout}s") from None
        self._check()  # the step may have ended the call or sent it on: then it is no longer the script's
        return reply

    def answer(self) -> None:
        """Answer the call: ``session.answer()``."""
        self.execute("answer")

    def playback(self, path: str) -> None:
        """Play a file or tone and wait for it to end: ``session.playback("ivr/ivr-welcome.wav")``."""
        self.execute("playback", path)

    def say(self, text: str, kind: str = "NUMBER", method: str = "pronounced", lang: str = "en") -> None:
        """Speak a number, date... with mod_say: ``session.say("42")``; digit by digit: ``method="iterated"``."""
        self.execute("say", f"{lang} {kind} {method} {text}")

    def play_and_get_digits(
        self,
        prompt: str,
        *,
        min_digits: int = 1,
        max_digits: int = 1,
        tries: int = 3,
        timeout_ms: int = 5000,
        terminators: str = "#",
        invalid: str = "silence_stream://250",
        var: str = "fsfarm_digits",
        regex: str = "\\d+",
        digit_timeout_ms: int = 3000,
    ) -> str:
        """Prompt and collect digits ("" if none valid): ``choice = session.play_and_get_digits("ivr/menu.wav")``."""
        self.execute(
            "play_and_get_digits",
            f"{min_digits} {max_digits} {tries} {timeout_ms} {terminators} "
            f"{prompt} {invalid} {var} {regex} {digit_timeout_ms}",
        )
        return self.get_var(var)

    def get_digits(self, max_digits: int = 1, terminators: str = "#", timeout: float = 5.0) -> str:
        """Collect DTMF already pressed or pressed within ``timeout`` s: ``pin = session.get_digits(4)``."""
        collected = ""
        while len(collected) < max_digits:
            self._check()
            try:
                digit = self._digits.get(timeout=timeout)
            except gevent.queue.Empty:
                break
            if digit is None:
                self._check()
                break
            if digit in terminators:
                break
            collected += digit
        return collected

    def record(self, path: str, max_seconds: int = 60, silence_threshold: int = 200, silence_seconds: int = 3) -> None:
        """Record the caller to a file until silence or ``#``: ``session.record("/recordings/msg.wav", 30)``."""
        self.execute("record", f"{path} {max_seconds} {silence_threshold} {silence_seconds}")

    def bridge(self, target: str) -> dict[str, str]:
        """Connect the caller to another endpoint until that side hangs up: ``session.bridge("user/1002@acme.test")``.

        Returns the CHANNEL_EXECUTE_COMPLETE headers when the bridge ends (``variable_bridge_hangup_cause``,
        ``variable_originate_disposition``); the script goes on with the caller. If the caller hung up,
        or the caller was transferred out of the bridge, ``CallEnded`` is raised instead.
        """
        return self.execute("bridge", target)

    def transfer(self, extension: str, context: str = "") -> None:
        """Send the call on to an extension of the tenant's dialplan: ``session.transfer("1002")``.

        The call lives on without the script: return after it. Any later verb raises ``CallEnded``,
        and the server lets go of the call instead of hanging it up.
        """
        try:
            self.execute("transfer", f"{extension} XML {context or self.tenant}")
        except CallEnded:
            if not self.transferred:
                raise
        self._left_to_dialplan()

    def conference(self, number: str, pin: str = "", profile: str = "default") -> None:
        """Put the caller in the tenant's room ``number`` until they leave: ``session.conference("3000")``."""
        name = room_name(number, self.tenant) if self.tenant else number
        self.execute("conference", f"{name}@{profile}" + (f"+{pin}" if pin else ""))

    def set_var(self, name: str, value: str) -> None:
        """Set a channel variable: ``session.set_var("fsfarm_menu", "sales")``."""
        self.execute("set", f"{name}={value}")

    def get_var(self, name: str) -> str:
        """Read a channel variable ("" when unset): ``lang = session.get_var("default_language")``."""
        reply = self._send(f"api uuid_getvar {self.uuid} {name}")
        value = str(reply.data or "")
        return "" if value in ("_undef_", "") or value.startswith("-ERR") else value

    def on_dtmf(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(digit)`` for every key pressed: ``session.on_dtmf(lambda d: log.info(d))``."""
        self._dtmf_callbacks.append(callback)

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """End the call: ``session.hangup()`` or ``session.hangup("USER_BUSY")``."""
        if self.hung_up and not self.transferred:
            return  # already over; after a transfer _send raises CallEnded: the call is not the script's to end
        self._send(f"sendmsg\ncall-command: hangup\nhangup-cause: {cause}")
        self._hangup_seen.wait(timeout=HANGUP_WAIT)
