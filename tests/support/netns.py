"""Hosts as Linux network namespaces, for tests that cut, delay and filter the links
between participants (tests/network/test_partitions.py).

Each host is a namespace (``ip netns``) with its own loopback and one veth pair whose
other end is attached to a bridge in the root namespace; hosts reach each other only
through their addresses on that bridge. The test process reaches a host's loopback
(JSON-RPC, Q2T) from a worker thread that has entered the namespace (``setns`` is per
thread for network namespaces), so cutting a host's link never cuts the test's view of
it. Every name carries a random tag, so parallel runs do not collide, and ``topology``
deletes what it made even when a test fails.

Needs root and iproute2; ``unavailable_reason`` says why not when they are missing.
Delay is the kernel's ``tc netem`` where it has ``sch_netem``, and otherwise a delay in
the test process (tests/support/tun_delay.py: each host's outgoing packets routed
through a TUN device and written back late); either way each packet between two hosts
is delayed once. No iptables or nft binary is needed: a manager's port is filtered with
a policy-routing rule (``ip rule ... sport PORT blackhole``).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from tests.support.tun_delay import DelayedHost

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
Result = TypeVar("Result")
SUBNET = "10.213.0.0/24"
#: How a delay is made: the kernel's netem, or the test process (no sch_netem).
DelayKind = Literal["netem", "userspace"]


class CommandFailed(Exception):
    def __init__(self, command: list[str], stderr: str) -> None:
        super().__init__(f"{' '.join(command)}: {stderr.strip()}")
        self.stderr = stderr


class NetemUnavailable(Exception):
    """The kernel has no ``sch_netem`` (``tc qdisc ... netem`` fails)."""


def _run(*command: str) -> None:
    completed = subprocess.run(
        list(command), capture_output=True, text=True, timeout=30, check=False
    )
    if completed.returncode != 0:
        raise CommandFailed(list(command), completed.stderr)


def _quietly(*command: str) -> None:
    """For teardown: what is already gone is fine."""
    subprocess.run(list(command), capture_output=True, timeout=30, check=False)


def _enter_namespace(namespace: str) -> None:
    """Move the calling thread into ``namespace`` (its sockets are then made there)."""
    descriptor = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(descriptor, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
    finally:
        os.close(descriptor)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when a probe namespace, bridge and
    veth pair could be created (and were deleted again)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the tests as root"
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed"
    tag = secrets.token_hex(3)
    namespace, bridge, veth = f"qprobe-{tag}", f"qpb{tag}", f"qpv{tag}"
    try:
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    except (CommandFailed, OSError) as exc:
        return f"cannot create a network namespace, bridge and veth pair: {exc}"
    finally:
        _quietly("ip", "link", "del", veth)
        _quietly("ip", "link", "del", bridge)
        _quietly("ip", "netns", "del", namespace)
    return None


@dataclass
class Host:
    """One namespace: its address on the bridge and the root-side end of its link."""

    name: str
    namespace: str
    address: str
    link: str
    _worker: ThreadPoolExecutor = field(repr=False)
    dropped_ports: set[int] = field(default_factory=set)

    def run(self, function: Callable[..., Result], *args: Any) -> Result:
        """``function(*args)`` on a thread inside the namespace: a connection it opens to
        127.0.0.1 reaches this host's loopback."""
        return self._worker.submit(function, *args).result()

    def command(self, *argv: str) -> list[str]:
        """``argv`` to run as a process inside the namespace (``ip netns exec`` execs it,
        so the process's pid is the program's own)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class Topology:
    """Hosts on one bridge; ``cut``/``heal`` a host's link, ``drop_port`` on a host,
    ``delay`` a host's traffic."""

    def __init__(self, names: list[str]) -> None:
        self.tag = secrets.token_hex(2)
        self.bridge = f"qp{self.tag}br"
        self.hosts: dict[str, Host] = {}
        self._names = names
        #: Delayed hosts: None for netem, else the userspace delay.
        self._delayed: dict[str, DelayedHost | None] = {}
        self._netem_missing = False

    def create(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "link", "set", self.bridge, "up")
        for index, name in enumerate(self._names):
            namespace, link = f"qp{self.tag}-{name}", f"qp{self.tag}v{index}"
            address = f"10.213.0.{index + 2}"
            _run("ip", "netns", "add", namespace)
            self.hosts[name] = Host(
                name,
                namespace,
                address,
                link,
                ThreadPoolExecutor(
                    4, f"netns-{name}", initializer=_enter_namespace, initargs=(namespace,)
                ),
            )
            _run(
                "ip",
                "link",
                "add",
                link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                namespace,
            )
            _run("ip", "link", "set", link, "master", self.bridge, "up")
            inside = ["ip", "netns", "exec", namespace]
            _run(*inside, "ip", "link", "set", "lo", "up")
            _run(*inside, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
            _run(*inside, "ip", "link", "set", "eth0", "up")

    def cut(self, name: str) -> None:
        """Take the host's link down: it reaches no other host, and none reaches it."""
        _run("ip", "link", "set", self.hosts[name].link, "down")

    def heal(self, name: str) -> None:
        _run("ip", "link", "set", self.hosts[name].link, "up")

    def drop_port(self, name: str, port: int) -> None:
        """Silently drop every TCP segment the host sends from ``port``: a server there
        answers nobody beyond loopback (a firewall dropping the port, as seen from
        outside), and the host's other ports are untouched."""
        host = self.hosts[name]
        _run(*host.command("ip", "rule", "add", "ipproto", "tcp", "sport", str(port), "blackhole"))
        host.dropped_ports.add(port)

    def allow_port(self, name: str, port: int) -> None:
        host = self.hosts[name]
        _run(*host.command("ip", "rule", "del", "ipproto", "tcp", "sport", str(port), "blackhole"))
        host.dropped_ports.discard(port)

    def delay(self, name: str, milliseconds: int) -> DelayKind:
        """Delay by ``milliseconds`` each packet between the host and the others, and say
        how: netem on the root-side end of its link (what the bridge hands to the host)
        or, without ``sch_netem``, a userspace delay of what the host sends."""
        if name in self._delayed:
            raise ValueError(f"{name} is delayed already; undelay it first")
        if not self._netem_missing:
            try:
                self._netem(name, milliseconds)
                self._delayed[name] = None
                return "netem"
            except NetemUnavailable:
                self._netem_missing = True
        host = self.hosts[name]
        delayed = DelayedHost(host.run, host.command(), host.address, SUBNET, milliseconds / 1000)
        delayed.start()
        self._delayed[name] = delayed
        return "userspace"

    def _netem(self, name: str, milliseconds: int) -> None:
        link = self.hosts[name].link
        try:
            _run("tc", "qdisc", "add", "dev", link, "root", "netem", "delay", f"{milliseconds}ms")
        except CommandFailed as exc:
            if "unknown" in exc.stderr.lower() or "no such file" in exc.stderr.lower():
                raise NetemUnavailable(f"tc netem: {exc.stderr.strip()}") from None
            raise

    def undelay(self, name: str) -> None:
        if name not in self._delayed:
            return
        delayed = self._delayed.pop(name)
        if delayed is None:
            _quietly("tc", "qdisc", "del", "dev", self.hosts[name].link, "root")
        else:
            delayed.stop()

    def restore(self) -> None:
        """Every link up, undelayed and unfiltered (between tests, also after a failure)."""
        for name, host in self.hosts.items():
            _quietly("ip", "link", "set", host.link, "up")
            self.undelay(name)
            for port in list(host.dropped_ports):
                self.allow_port(name, port)

    def destroy(self) -> None:
        for name in list(self._delayed):
            self.undelay(name)
        for host in self.hosts.values():
            host._worker.shutdown(wait=False, cancel_futures=True)
            _quietly("ip", "link", "del", host.link)
            _quietly("ip", "netns", "del", host.namespace)
        _quietly("ip", "link", "del", self.bridge)


@contextmanager
def topology(names: list[str]) -> Iterator[Topology]:
    """Hosts ``names`` (10.213.0.2, .3, ... in that order) on a bridge of their own;
    all deleted on exit, also when creating them failed half-way."""
    made = Topology(names)
    try:
        made.create()
        yield made
    finally:
        made.destroy()


@contextmanager
def delayed_links(links: Topology, names: list[str], milliseconds: int) -> Iterator[DelayKind]:
    """Each of ``names`` delayed by ``milliseconds`` (so every packet between two of them
    by that much once) inside the block, undelayed on exit, also when the block or
    delaying a later host failed; yields how (the first host decides: netem if the
    kernel has it)."""
    kinds: list[DelayKind] = []
    try:
        for name in names:
            kinds.append(links.delay(name, milliseconds))
        yield kinds[0]
    finally:
        for name in names:
            links.undelay(name)
