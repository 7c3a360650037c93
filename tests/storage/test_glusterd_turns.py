"""A busy port 24007 (another run's glusterd) is waited for: the GlusterFS tests run, they do not skip.

(Named to run before the other storage modules: their session volume would hold this process's turn.)
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.storage import glusterd


def _hold_port(deadline: float) -> socket.socket:
    """Listen on 127.0.0.1:24007 as another run's glusterd would (once whoever has it lets go)."""
    while True:
        holder = socket.socket()
        try:
            holder.bind(("127.0.0.1", glusterd.GLUSTERD_PORT))
            holder.listen()
            return holder
        except OSError:
            holder.close()
            assert time.monotonic() < deadline, "port 24007 never came free"
            time.sleep(0.5)


def test_a_busy_glusterd_port_is_waited_for_then_the_volume_runs():
    reason = glusterd.why_no_gluster()  # asked while the port is free: not installed, no gfapi, not root
    if reason:
        pytest.skip(reason)
    if glusterd.held_here():
        pytest.skip("this process already runs the session's volume")
    holder = _hold_port(time.monotonic() + glusterd.WAIT_SECONDS)
    released = threading.Event()

    def release() -> None:
        holder.close()
        released.set()

    try:
        assert glusterd.why_no_gluster() is None, "a busy port must not be a reason to skip"
        threading.Timer(3.0, release).start()
        with glusterd.running_gluster(wait=300) as volume:
            assert released.is_set()  # it started only once the port was free
            info = glusterd._gluster("volume", "info", volume.volume)
            assert info.returncode == 0 and "Status: Started" in info.stdout, info
    finally:
        holder.close()
    assert not glusterd.held_here()
