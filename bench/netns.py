"""The network of `bench/run --network realistic`: the shops behind HTTPS in a network namespace of
their own, reached over a veth pair whose shop side delays and loses packets.

`realistic_network()` makes the namespace `pricemon-bench-<pid>`, a veth pair (`pmb<pid>h` here,
`pmb<pid>n` there) on a free 10.213.X.0/24, and the shaping:

* `tc qdisc ... netem delay 40ms 20ms loss 0.1%` on the shop side's egress when the kernel has
  sch_netem;
* otherwise (kernels built without it, such as this benchmark's VMs) the same figures another way:
  an nftables rule in the namespace drops 0.1% of the packets leaving the shop side (the kernel's
  TCP retransmits them, as with netem) and `bench.delay_relay` in front of nginx holds every byte
  the shops send for 40 +- 20 ms. The relay costs some CPU on the shared cores; it is not counted
  in pricemon's or Scrapy's CPU seconds, which are per process tree.

Segmentation offloads are switched off on the shop side (`gso_max_segs 1`, ethtool when present) so
that a lost packet is one 1,500-byte frame, as on a real link, not a 64 KB super-packet. Everything
is removed on exit, Ctrl-C and SIGTERM included (the runner turns SIGTERM into KeyboardInterrupt);
namespaces left by a run that was killed with SIGKILL are removed by the next run (their pid is gone).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

NAMESPACE_PREFIX = "pricemon-bench-"
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
DELAY = "40ms"
JITTER = "20ms"
LOSS_PERCENT = 0.1
LOSS_TABLE = "pricemon_bench_loss"


class NetworkSetupError(RuntimeError):
    """The namespace, veth or shaping could not be made; the message says what and how to fix it."""


@dataclass
class RealisticNetwork:
    namespace: str
    host_veth: str
    shop_veth: str
    subnet: ipaddress.IPv4Network
    host_address: str
    shop_address: str
    shaping: str = ""
    relay: subprocess.Popen[bytes] | None = None
    cleanups: list[list[str]] = field(default_factory=list)

    @property
    def command_prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.namespace)

    def start_relay(self, pairs: Sequence[tuple[int, int]], log_path: Path) -> None:
        """The delay relay (kernels without netem): LISTEN=UPSTREAM pairs on the shop address."""
        repo_root = Path(__file__).resolve().parent.parent
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")])),
        }
        command = [
            *self.command_prefix,
            sys.executable,
            "-m",
            "bench.delay_relay",
            self.shop_address,
            "--delay",
            DELAY,
            "--jitter",
            JITTER,
            *(f"{listen}={upstream}" for listen, upstream in pairs),
        ]
        with log_path.open("wb") as log:
            self.relay = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
        assert self.relay.stdout is not None
        line = self.relay.stdout.readline()
        if line.strip() != b"ready":
            self.stop_relay()
            raise NetworkSetupError(f"the delay relay did not start: {log_path.read_text(errors='replace')[-1500:]}")

    def packet_counts(self) -> tuple[int, int] | None:
        """(packets dropped by the loss rule, packets the shop side sent), or None with netem."""
        if self.shaping.startswith("tc netem"):
            return None
        listed = subprocess.run(
            [*self.command_prefix, "nft", "list", "table", "inet", LOSS_TABLE], capture_output=True, text=True
        ).stdout
        dropped = re.search(r"counter packets (\d+)", listed)
        sent = subprocess.run(
            [*self.command_prefix, "cat", f"/sys/class/net/{self.shop_veth}/statistics/tx_packets"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if dropped is None or not sent.isdigit():
            return None
        return int(dropped.group(1)), int(sent) + int(dropped.group(1))

    def stop_relay(self) -> None:
        if self.relay is not None and self.relay.poll() is None:
            self.relay.terminate()
            try:
                self.relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait()
        self.relay = None


def _run(command: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise NetworkSetupError(f"{what}: `{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()}")
    return done


def network_unavailable() -> str | None:
    """Why this machine cannot run the network benchmark, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (ip netns, veth, tc/nftables)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (apt-get install -y iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def remove_stale_namespaces() -> None:
    """Namespaces of earlier runs whose process is gone (killed with SIGKILL)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(re.escape(NAMESPACE_PREFIX) + r"(\d+)", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            logger.warning("removing network namespace %s left by a run that no longer exists", name)
            _kill_namespace_processes(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _kill_namespace_processes(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout.split()
    for pid in pids:
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)


def _free_subnet() -> ipaddress.IPv4Network:
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=False)
    used = [
        ipaddress.ip_network(token, strict=False)
        for token in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)\b", routes.stdout)
    ]
    start = os.getpid() % 250
    subnets = list(SUBNET_POOL.subnets(new_prefix=24))
    for offset in range(len(subnets)):
        candidate = subnets[(start + offset) % len(subnets)]
        if not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return candidate
    raise NetworkSetupError(f"no free /24 left in {SUBNET_POOL}")


def _netem_works(network: RealisticNetwork) -> bool:
    command = [
        *network.command_prefix,
        "tc",
        "qdisc",
        "add",
        "dev",
        network.shop_veth,
        "root",
        "netem",
        "delay",
        DELAY,
        JITTER,
        "loss",
        f"{LOSS_PERCENT}%",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return True
    logger.warning("tc netem is not available here (%s): emulating delay and loss without it", done.stderr.strip())
    return False


@contextmanager
def realistic_network() -> Iterator[RealisticNetwork]:
    """Make the namespace, veth and shaping; remove them all on the way out, whatever happens."""
    why = network_unavailable()
    if why:
        raise NetworkSetupError(f"--network realistic {why}")
    remove_stale_namespaces()
    pid = os.getpid()
    subnet = _free_subnet()
    hosts = list(subnet.hosts())
    network = RealisticNetwork(
        namespace=f"{NAMESPACE_PREFIX}{pid}",
        host_veth=f"pmb{pid}h",
        shop_veth=f"pmb{pid}n",
        subnet=subnet,
        host_address=str(hosts[0]),
        shop_address=str(hosts[1]),
    )
    ns = network.command_prefix
    try:
        _run(["ip", "netns", "add", network.namespace], "creating the namespace")
        _run(
            ["ip", "link", "add", network.host_veth, "type", "veth", "peer", "name", network.shop_veth],
            "creating the veth pair",
        )
        _run(["ip", "link", "set", network.shop_veth, "netns", network.namespace], "moving the veth")
        _run(["ip", "addr", "add", f"{network.host_address}/{subnet.prefixlen}", "dev", network.host_veth], "address")
        _run(["ip", "link", "set", network.host_veth, "up"], "veth up")
        _run(
            [*ns, "ip", "addr", "add", f"{network.shop_address}/{subnet.prefixlen}", "dev", network.shop_veth],
            "address",
        )
        _run([*ns, "ip", "link", "set", network.shop_veth, "up"], "veth up")
        _run([*ns, "ip", "link", "set", "lo", "up"], "loopback up")
        # TCP hands the stack up to 64 KB super-packets, cut into frames only after netfilter and the
        # qdisc have seen them: one segment per packet makes a loss one 1,500-byte frame.
        _run([*ns, "ip", "link", "set", "dev", network.shop_veth, "gso_max_segs", "1"], "one segment per packet")
        if shutil.which("ethtool"):
            subprocess.run(
                [*ns, "ethtool", "-K", network.shop_veth, "tso", "off", "gso", "off"], capture_output=True, check=False
            )
        if _netem_works(network):
            network.shaping = f"tc netem delay {DELAY} {JITTER} loss {LOSS_PERCENT}% on the shops' side of the veth"
        else:
            if shutil.which("nft") is None:
                raise NetworkSetupError(
                    "this kernel has no tc netem and `nft` is missing for the loss rule: apt-get install -y nftables"
                )
            table = LOSS_TABLE
            _run([*ns, "nft", "add", "table", "inet", table], "nftables table")
            _run(
                [*ns, "nft", "add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }"],
                "nftables chain",
            )
            # numgen random mod 1000 is 0 for 1 packet in 1000: 0.1% loss.
            per_mille = round(LOSS_PERCENT * 10)
            _run(
                [*ns, "nft", "add", "rule", "inet", table, "out", "oifname", network.shop_veth,
                 "numgen", "random", "mod", "1000", "<", str(per_mille), "counter", "drop"],
                "nftables loss rule",
            )  # fmt: skip
            network.shaping = (
                f"no sch_netem in this kernel: {LOSS_PERCENT}% loss by an nftables rule on the shops' side of the"
                f" veth, delay {DELAY} +- {JITTER} (uniform) on every byte the shops send by bench.delay_relay"
            )
        logger.info("network namespace %s on %s: %s", network.namespace, subnet, network.shaping)
        yield network
    finally:
        counts = network.packet_counts() if network.shaping else None
        if counts:
            logger.info(
                "loss rule dropped %d of %d packets the shops sent (%.3f%%)",
                *counts,
                100 * counts[0] / max(counts[1], 1),
            )
        network.stop_relay()
        _kill_namespace_processes(network.namespace)
        # Deleting the namespace deletes its veth end, and with it the pair.
        subprocess.run(["ip", "netns", "del", network.namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", network.host_veth], capture_output=True, check=False)
        logger.info("removed network namespace %s", network.namespace)
