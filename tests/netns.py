"""Hosts on one machine: network namespaces joined by a bridge, each with its own private address.

The root namespace holds the bridge and the "server host" address (``.1``); every namespace is a host
reached over a veth pair at ``.2``, ``.3``... Only loopback and these addresses (one private /24) are
used. :class:`Network` tears everything down on ``close()``, even after a failure half-way through
``add_host``; run processes in a host with :meth:`Host.command`, cut a host off with :meth:`Host.cut`,
and kill everything a host runs with :meth:`Host.kill_all` (a machine lost).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field


def ip(*args: str, netns: str | None = None) -> str:
    prefix = ["ip", "netns", "exec", netns, "ip"] if netns else ["ip"]
    proc = subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def pid_gone(pid: int) -> bool:
    """Dead: no such process, or a zombie (state Z) that nobody reaped yet (``kill -0`` still succeeds)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return not stat.stdout.strip() or stat.stdout.strip().startswith("Z")


def wait_gone(pids: list[int], deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while not all(pid_gone(p) for p in pids):
        if time.monotonic() > end:
            raise TimeoutError(f"processes {[p for p in pids if not pid_gone(p)]} still alive after {deadline_s}s")
        time.sleep(0.2)


@dataclass
class Host:
    name: str  # the namespace
    address: str
    veth: str  # the host side of the pair, in the root namespace

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False)
        return [int(p) for p in out.stdout.split()]

    def cut(self) -> None:
        """The host's network cable pulled: its side of the link goes down."""
        ip("link", "set", "eth0", "down", netns=self.name)

    def kill_all(self) -> list[int]:
        """SIGKILL to everything running in the host (a machine lost), then wait until all are dead."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_gone(pids)
        return pids


@dataclass
class Network:
    """A bridge with address ``<prefix>.1`` in the root namespace and hosts at ``<prefix>.2`` onwards."""

    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000:04d}{random.randrange(100):02d}")
    prefix: str = field(default_factory=lambda: f"10.{random.randrange(200, 250)}.{random.randrange(1, 250)}")
    hosts: list[Host] = field(default_factory=list)
    _bridge_up: bool = False

    @property
    def bridge(self) -> str:
        return f"obr{self.tag}"

    @property
    def address(self) -> str:
        """The root namespace's (the server host's) address, reachable from every host."""
        return f"{self.prefix}.1"

    def open(self) -> Network:
        ip("link", "add", self.bridge, "type", "bridge")
        self._bridge_up = True
        ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        return self

    def add_host(self) -> Host:
        n = len(self.hosts) + 2
        host = Host(name=f"orch{self.tag}h{n}", address=f"{self.prefix}.{n}", veth=f"ov{self.tag}h{n}")
        ip("netns", "add", host.name)
        self.hosts.append(host)  # from here on close() removes it, whatever fails next
        ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        ip("link", "set", host.veth, "master", self.bridge)
        ip("link", "set", host.veth, "up")
        ip("addr", "add", f"{host.address}/24", "dev", "eth0", netns=host.name)
        ip("link", "set", "eth0", "up", netns=host.name)
        ip("link", "set", "lo", "up", netns=host.name)
        return host

    def close(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(OSError, TimeoutError):
                host.kill_all()
            for args in (("link", "del", host.veth), ("netns", "del", host.name)):
                with contextlib.suppress(RuntimeError):  # never created, or gone with the namespace
                    ip(*args)
        self.hosts.clear()
        if self._bridge_up:
            with contextlib.suppress(RuntimeError):
                ip("link", "del", self.bridge)
            self._bridge_up = False
