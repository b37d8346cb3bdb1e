"""A fixed delay on what one network namespace sends to the other hosts, made in
userspace: the stand-in for ``tc netem`` on kernels without ``sch_netem``
(tests/support/netns.py uses it when netem is missing).

Inside the namespace, a policy-routing rule (``iif lo``: packets this host makes) sends
everything for the hosts' subnet to a table of its own, whose one route leads into a
TUN device, with the host's address as source. A thread of the test process reads each
packet from the device and writes it back into the same device once the delay has
passed; the kernel takes it as arriving on the TUN device, so the rule no longer matches
and the main table forwards it out of the host's link. Packets to the host's own
address never leave (the ``local`` table is looked up first), and nothing a host
receives is touched: with every host delayed, each packet between two hosts is delayed
once, as netem on every link delays it, so a round trip takes twice the delay more.

The TUN device is not persistent: it disappears when its descriptor is closed, also
when the test process dies. ``stop`` deletes the rule and puts back the sysctls it
changed; the namespace is the test's own either way.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_MAX_PACKET = 65536
#: Policy-routing table and rule priority (before the ``main`` rule at 32766).
ROUTING_TABLE = 213
RULE_PRIORITY = 1000
Result = TypeVar("Result")


class DelayFailed(Exception):
    """A command that sets the delay up failed; nothing of it is left behind."""


def _open_tun(device: str) -> int:
    """A descriptor of a new TUN device ``device`` in the calling thread's namespace
    (IP packets without a header; the device goes when the descriptor is closed)."""
    descriptor = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        request = struct.pack("16sH22x", device.encode(), _IFF_TUN | _IFF_NO_PI)
        fcntl.ioctl(descriptor, _TUNSETIFF, request)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


class DelayedHost:
    """The delay on one namespace's outgoing traffic, from ``start`` until ``stop``.

    ``in_namespace(function, *args)`` must run ``function`` on a thread inside the
    namespace (how the TUN device is made there); ``inside`` is the argv prefix that
    runs a command there (``ip netns exec NAME``)."""

    def __init__(
        self,
        in_namespace: Callable[..., Any],
        inside: list[str],
        address: str,
        subnet: str,
        seconds: float,
        device: str = "qdelay0",
    ) -> None:
        self._in_namespace = in_namespace
        self._inside = inside
        self._address = address
        self._subnet = subnet
        self.seconds = seconds
        self.device = device
        self.forwarded = 0
        self.dropped = 0
        self._tun: int | None = None
        self._wake_read, self._wake_write = -1, -1
        self._thread: threading.Thread | None = None
        self._rule_added = False
        self._saved_sysctls: dict[str, str] = {}

    # --- set up and take down -------------------------------------------------------

    def start(self) -> None:
        """Divert the host's outgoing packets through the delay; on failure everything
        made so far is undone and DelayFailed raised."""
        try:
            self._tun = self._in_namespace(_open_tun, self.device)
            self._run("ip", "link", "set", self.device, "up")
            self._sysctl("net.ipv4.ip_forward", "1")
            # The packet comes back in with the host's own address as source.
            self._sysctl(f"net.ipv4.conf.{self.device}.accept_local", "1")
            self._sysctl(f"net.ipv4.conf.{self.device}.rp_filter", "0")
            self._sysctl("net.ipv4.conf.all.rp_filter", "0")
            route = f"{self._subnet} dev {self.device} src {self._address} table {ROUTING_TABLE}"
            self._run("ip", "route", "add", *route.split())
            self._wake_read, self._wake_write = os.pipe()
            self._thread = threading.Thread(
                target=self._forward, args=(self._tun,), name=f"delay-{self._address}", daemon=True
            )
            self._thread.start()
            self._run(*self._rule("add"))
            self._rule_added = True
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Traffic direct again, the thread joined, the device, rule and sysctls gone
        back; safe to call more than once and after a failed ``start``."""
        if self._rule_added:
            self._quietly(*self._rule("del"))
            self._rule_added = False
        if self._thread is not None:
            os.write(self._wake_write, b"x")
            self._thread.join(10)
            if self._thread.is_alive():  # not seen: it waits on the wake-up pipe
                raise DelayFailed(f"the delay thread of {self._address} did not stop")
            self._thread = None
        for descriptor in (self._wake_read, self._wake_write):
            if descriptor >= 0:
                os.close(descriptor)
        self._wake_read, self._wake_write = -1, -1
        if self._tun is not None:
            os.close(self._tun)  # the device and its route go with it
            self._tun = None
        for key, value in reversed(self._saved_sysctls.items()):
            self._quietly("sysctl", "-qw", f"{key}={value}")
        self._saved_sysctls.clear()

    def _rule(self, verb: str) -> list[str]:
        selector = f"priority {RULE_PRIORITY} iif lo to {self._subnet} lookup {ROUTING_TABLE}"
        return ["ip", "rule", verb, *selector.split()]

    def _sysctl(self, key: str, value: str) -> None:
        completed = self._command("sysctl", "-n", key)
        if completed.returncode != 0:
            raise DelayFailed(f"sysctl {key}: {completed.stderr.strip()}")
        self._saved_sysctls.setdefault(key, completed.stdout.strip())
        self._run("sysctl", "-qw", f"{key}={value}")

    def _command(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._inside, *argv], capture_output=True, text=True, timeout=30, check=False
        )

    def _run(self, *argv: str) -> None:
        completed = self._command(*argv)
        if completed.returncode != 0:
            raise DelayFailed(f"{' '.join(argv)}: {completed.stderr.strip()}")

    def _quietly(self, *argv: str) -> None:
        self._command(*argv)

    # --- the delay itself -----------------------------------------------------------

    def _forward(self, tun: int) -> None:
        """Each packet read from ``tun`` is written back ``seconds`` later, in the order
        read; at ``stop`` what is still held is written at once."""
        held = deque[tuple[float, bytes]]()
        while True:
            wait = max(0.0, held[0][0] - time.monotonic()) if held else None
            readable, _, _ = select.select([tun, self._wake_read], [], [], wait)
            if self._wake_read in readable:
                break
            if tun in readable:
                self._read_all(tun, held)
            now = time.monotonic()
            while held and held[0][0] <= now:
                self._write(tun, held.popleft()[1])
        while held:
            self._write(tun, held.popleft()[1])

    def _read_all(self, tun: int, held: deque[tuple[float, bytes]]) -> None:
        due = time.monotonic() + self.seconds
        while True:
            try:
                packet = os.read(tun, _MAX_PACKET)
            except BlockingIOError:
                return
            held.append((due, packet))

    def _write(self, tun: int, packet: bytes) -> None:
        try:
            os.write(tun, packet)
            self.forwarded += 1
        except OSError:
            self.dropped += 1  # as a congested link would; TCP sends it again
