"""A NAT made of network namespaces, for phones behind a masquerading router (root only).

    root namespace (the farm)             router namespace                 phone namespace
    PUBLIC.1 Kamailio, PUBLIC.3 node  <->  PUBLIC.2 | MASQUERADE | PRIVATE.1  <->  PRIVATE.2 baresip

Only the lab's own namespaces, veth pairs and addresses take part: the root namespace gets a blackhole
route for the private network (a packet to a phone's private Contact goes nowhere, as on the Internet).
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000


class NatUnavailable(OSError):
    """This machine (not root, no ``ip netns``, no iptables) cannot build the lab."""


class NatLab:
    """Two namespaces, two veth pairs, one masquerading router; ``down()`` removes all of it."""

    def __init__(self) -> None:
        n = os.getpid() % 120 * 2  # 198.18.0.0/15 is the benchmarking range: nothing real lives there
        self.public_net, self.private_net = f"198.18.{n}", f"198.18.{n + 1}"
        tag = f"{os.getpid() % 100000}"
        self.router, self.phone_ns = f"fsnat{tag}r", f"fsnat{tag}p"
        self.root_if, self.router_pub, self.router_priv, self.phone_if = (f"fsn{tag}{c}" for c in "abcd")
        self.kamailio_ip, self.router_ip, self.node_ip = (f"{self.public_net}.{i}" for i in (1, 2, 3))
        self.gateway_ip, self.phone_ip = f"{self.private_net}.1", f"{self.private_net}.2"

    def up(self) -> NatLab:
        """Build it; on any failure clean up and raise NatUnavailable."""
        pub, priv = self.public_net, self.private_net
        steps = [
            ["ip", "netns", "add", self.router],
            ["ip", "netns", "add", self.phone_ns],
            ["ip", "link", "add", self.root_if, "type", "veth", "peer", "name", self.router_pub],
            ["ip", "link", "set", self.router_pub, "netns", self.router],
            ["ip", "addr", "add", f"{self.kamailio_ip}/24", "dev", self.root_if],
            ["ip", "addr", "add", f"{self.node_ip}/24", "dev", self.root_if],
            ["ip", "link", "set", self.root_if, "up"],
            ["ip", "route", "add", "blackhole", f"{priv}.0/24"],
            *self._in(
                self.router,
                ["ip", "addr", "add", f"{self.router_ip}/24", "dev", self.router_pub],
                ["ip", "link", "set", self.router_pub, "up"],
                ["ip", "link", "set", "lo", "up"],
                ["ip", "link", "add", self.router_priv, "type", "veth", "peer", "name", self.phone_if],
                ["ip", "link", "set", self.phone_if, "netns", self.phone_ns],
                ["ip", "addr", "add", f"{self.gateway_ip}/24", "dev", self.router_priv],
                ["ip", "link", "set", self.router_priv, "up"],
                ["ip", "route", "add", "default", "via", self.kamailio_ip],
                ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
                ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", self.router_pub, "-j", "MASQUERADE"],
            ),
            *self._in(
                self.phone_ns,
                ["ip", "addr", "add", f"{self.phone_ip}/24", "dev", self.phone_if],
                ["ip", "link", "set", self.phone_if, "up"],
                ["ip", "link", "set", "lo", "up"],
                ["ip", "route", "add", "default", "via", self.gateway_ip],
            ),
        ]
        del pub
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=20)
            except (OSError, subprocess.TimeoutExpired) as exc:
                self.down()
                raise NatUnavailable(f"{' '.join(step)}: {exc}") from exc
            if done.returncode != 0:
                self.down()
                raise NatUnavailable(f"{' '.join(step)}: {done.stderr.strip()}")
        return self

    @staticmethod
    def _in(namespace: str, *commands: list[str]) -> list[list[str]]:
        return [["ip", "netns", "exec", namespace, *c] for c in commands]

    def down(self) -> None:
        """Remove the namespaces (their veth ends go with them) and the blackhole route; never raises."""
        for step in (
            ["ip", "netns", "del", self.phone_ns],
            ["ip", "netns", "del", self.router],
            ["ip", "link", "del", self.root_if],
            ["ip", "route", "del", "blackhole", f"{self.private_net}.0/24"],
        ):
            subprocess.run(step, capture_output=True, timeout=20, check=False)

    def connect_inside(self, address: tuple[str, int], timeout: float = 1) -> socket.socket:
        """A TCP connection made from inside the phone namespace (to its own loopback, say)."""
        result: list[socket.socket | BaseException] = []

        def enter_and_connect() -> None:
            # setns moves only this thread; the socket keeps the namespace it was made in.
            try:
                with open(f"/run/netns/{self.phone_ns}") as ns:
                    if ctypes.CDLL(None, use_errno=True).setns(ns.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                result.append(socket.create_connection(address, timeout=timeout))
            except BaseException as exc:  # handed to the caller's thread
                result.append(exc)

        thread = threading.Thread(target=enter_and_connect)
        thread.start()
        thread.join()
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]
