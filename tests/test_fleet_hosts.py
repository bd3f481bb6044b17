"""A fleet sweep across two hosts that are really apart: two network namespaces joined by one veth pair.

Each host is a network namespace this test makes (as root, ``ip netns add``) with
loopback up and one end of a veth pair on a private /30 (``NET``), no default
route and no IPv6, and its own ``HOME``, ``TMPDIR`` (so its own Ray session
folder), user cache and span log: the two share no file but the code, and talk
only through what Ray sends over the veth. A Ray head runs in one (``ray start
--head --block``), a worker node in the other, the driver (``python -m suite run
--cluster HEAD:PORT``) beside the head. The worker host's raylet and every
process under it (its lane, the lane's worker) are killed by PID while it runs a
case, as when a host dies: that case comes home as a ``lost`` row naming the
node, the cases still queued run on the head, and ``--resume`` runs that case
alone again. Teardown kills every process left in
either namespace by its PID (process groups first) and deletes the namespaces;
the test asserts nothing of either is left. It never runs ``ray stop``, which
would reach every Ray on the machine. The single-namespace cluster tests
(``tests/test_fleet_cluster.py``) stay the fast path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil
import pytest

from backends import _probes
from suite.results import load_run
from tests.fleet_backends import PLUGIN

ROOT = Path(__file__).resolve().parents[1]
#: ``nox -s tests`` sets this: there Ray missing fails instead of skipping.
REQUIRE_ENV = "CAUSAL_BENCH_REQUIRE_FLEET"
#: The private /30 joining the two hosts (an unlikely one, so it collides with nothing here).
NET = "10.213.47"
HEAD_IP, WORKER_IP = f"{NET}.1", f"{NET}.2"
PORT = 6380
SIZES = "1x8x2,1x16x2,1x24x2,1x32x2,1x40x2,1x48x2"
QUICK = ["--backends", "spans", "--forms", "cumsum", "--sizes", SIZES, "--budget", "0.01", "--warmup", "0.002"]
QUICK += ["--min-samples", "3", "--quiet", "--on-contention", "flag", "--rounds", "1", "--no-ceilings"]

pytestmark = pytest.mark.slow


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces_or_skip() -> None:
    """Skip, saying why, where Ray or network namespaces are missing (fail for Ray where it is required)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"Ray is required here ({REQUIRE_ENV}) but not installed")
        pytest.skip("Ray is not installed: pip install 'causal-bench[fleet]'")
    if shutil.which("ip") is None:
        pytest.skip("no network namespaces: iproute2's ip is not installed")
    if os.geteuid() != 0:
        pytest.skip("no network namespaces: ip netns add needs root")
    probe = f"cbprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"no network namespaces: ip netns add failed: {made.stderr.strip()}")
    ip("netns", "del", probe)


@dataclass
class Host:
    """One network namespace standing for a host, and the Ray node started in it."""

    ns: str
    address: str
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    ray: subprocess.Popen[str] | None = None

    @property
    def spans(self) -> Path:
        return self.folder / "spans.log"

    def run(self, *argv: str, stdout: IO[str] | int = subprocess.PIPE) -> subprocess.Popen[str]:
        """Start ``argv`` inside this host: its namespace, its environment, a process group of its own."""
        command = ["ip", "netns", "exec", self.ns, "env", "-i", *(f"{k}={v}" for k, v in self.env.items()), *argv]
        return subprocess.Popen(command, text=True, start_new_session=True, stdout=stdout, stderr=subprocess.STDOUT)

    def pids(self) -> set[int]:
        """Every process inside this host's network namespace."""
        return {int(p) for p in ip("netns", "pids", self.ns, check=False).split()}

    def raylet(self) -> int:
        """The PID of this host's raylet (a descendant of its ``ray start``)."""
        assert self.ray is not None
        found = [p.pid for p in psutil.Process(self.ray.pid).children(recursive=True) if p.name() == "raylet"]
        assert len(found) == 1, found
        return found[0]


def make_host(ns: str, veth: str, address: str, folder: Path) -> Host:
    """Address this host's end of the pair, bring it and loopback up; its folders and environment."""
    ip("-n", ns, "link", "set", "lo", "up")
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check=True)
    ip("-n", ns, "addr", "add", f"{address}/30", "dev", veth)
    ip("-n", ns, "link", "set", veth, "up")
    for name in ("home", "tmp", "cache"):
        (folder / name).mkdir(parents=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(folder / "home"),
        "TMPDIR": str(folder / "tmp"),
        "XDG_CACHE_HOME": str(folder / "cache"),
        _probes.CACHE_ENV: str(folder / "cache" / "causal-bench"),
        "PYTHONPATH": str(ROOT),
        "CAUSAL_BENCH_BACKENDS": PLUGIN,
        "FLEET_SPANS": str(folder / "spans.log"),
        "FLEET_DELAY_S": "0.5",
        "RAY_USAGE_STATS_ENABLED": "0",
        "LANG": "C.UTF-8",
    }
    return Host(ns, address, folder, env)


def start_node(host: Host, *argv: str, timeout: float = 90) -> None:
    """``ray start --block`` in ``host``, its output to a file, until it says the node runs (it then holds it)."""
    # Its own session folder: a worker node would otherwise take the head's path, here the same files.
    argv = (*argv, f"--temp-dir={host.folder / 'tmp' / 'ray'}")
    log = host.folder / "ray-start.log"
    with log.open("w") as out:
        host.ray = host.run(*argv, stdout=out)
    deadline = time.monotonic() + timeout
    while "Ray runtime started" not in log.read_text():
        assert host.ray.poll() is None and time.monotonic() < deadline, f"no Ray node in {host.ns}:\n{log.read_text()}"
        time.sleep(0.2)


def teardown(hosts: list[Host]) -> list[str]:
    """Kill every process of both hosts by PID and delete the namespaces; what was left behind, if anything.

    Each ``ray start`` leads a process group of its own: the group goes first, then
    whatever else is in either namespace (Ray's daemons may lead groups of their
    own), by PID, until none is left. Nothing outside the two namespaces is touched.
    """
    for host in hosts:
        if host.ray is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(host.ray.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (running := [(h, pid) for h in hosts for pid in h.pids()]) and time.monotonic() < deadline:
        for _, pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    left = [f"process {pid} in {h.ns}" for h in hosts for pid in h.pids()]
    for host in hosts:
        if host.ray is not None:
            host.ray.wait(10)
        ip("netns", "del", host.ns, check=False)
    listed = ip("netns", "list", check=False).split()
    left += [f"namespace {h.ns}" for h in hosts if h.ns in listed]
    return left


@pytest.fixture
def two_hosts() -> Iterator[tuple[Host, Host]]:
    """A head host and a worker host, apart but for one veth pair, each running a Ray node with one slot."""
    namespaces_or_skip()
    tag = f"cb{os.getpid() % 100000}"
    scratch = Path(tempfile.mkdtemp(prefix="cbhosts"))  # short: Ray's unix sockets live under it
    names = (f"{tag}h", f"{tag}w")
    hosts: list[Host] = []
    try:
        for ns in names:
            ip("netns", "add", ns)
            hosts.append(Host(ns, "", scratch))  # torn down from here on, whatever fails next
        # The pair is made with its ends in the two namespaces: neither ever exists outside them.
        ip("link", "add", names[0], "netns", names[0], "type", "veth", "peer", "name", names[1], "netns", names[1])
        head = make_host(names[0], names[0], HEAD_IP, scratch / "head")
        worker = make_host(names[1], names[1], WORKER_IP, scratch / "worker")
        hosts[:] = [head, worker]
        node = ["ray", "start", "--block", "--num-cpus=1", '--resources={"bench_slot": 1}', "--disable-usage-stats"]
        node += ["--object-store-memory=80000000"]
        start_node(head, *node, "--head", f"--node-ip-address={HEAD_IP}", f"--port={PORT}", "--include-dashboard=false")
        start_node(worker, *node, f"--address={HEAD_IP}:{PORT}", f"--node-ip-address={WORKER_IP}")
        yield head, worker
    finally:
        left = teardown(hosts)
        shutil.rmtree(scratch, ignore_errors=True)
    assert not left, f"left behind: {left}"


def routes(host: Host) -> list[str]:
    return [line.split(" proto")[0].strip() for line in ip("-n", host.ns, "route", "show").splitlines()]


def test_a_sweep_across_two_hosts_loses_only_the_killed_hosts_case_and_resume_runs_it(
    two_hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    head, worker = two_hosts
    # Apart: each host routes the /30 alone (no default route, no IPv6); loopback is its own.
    for host in (head, worker):
        assert routes(host) == [f"{NET}.0/30 dev {host.ns}"], routes(host)
        assert not ip("-n", host.ns, "-6", "route", "show").strip()
        addresses = ip("-n", host.ns, "-4", "-o", "addr", "show").split()
        assert {a for a in addresses if "/" in a} == {"127.0.0.1/8", f"{host.address}/30"}
    for host in (head, worker):  # each host's Ray session folder is its own
        assert (host.folder / "tmp" / "ray").is_dir()
    out = tmp_path / "out"
    driver = ["python", "-m", "suite", "run", "--cluster", f"{HEAD_IP}:{PORT}", "--out", str(out), *QUICK]
    killed: list[int] = []

    def kill_worker_raylet_mid_case() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = worker.spans.read_text() if worker.spans.exists() else ""
            if text.count("start ") > text.count("end "):  # the worker host is running a case
                pid = worker.raylet()
                # The raylet and every process under it at once, as when the host dies: a worker
                # left alive a moment could still send its case's row home.
                tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
                for process in tree:
                    with contextlib.suppress(psutil.Error):
                        process.kill()
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_worker_raylet_mid_case)
    killer.start()
    try:
        first = head.run(*driver)
        output = first.communicate(timeout=180)[0]
    finally:
        killer.join()
    assert killed, f"the worker host never ran a case:\n{output[-3000:]}"
    _, rows = load_run(out)
    assert first.returncode == 1 and len(rows) == 6, output[-3000:]
    lost = [r for r in rows if r.status == "error"]
    assert len(lost) == 1, [(r.status, r.reason) for r in rows]
    assert lost[0].node.startswith(f"{WORKER_IP}/") and lost[0].reason.startswith(f"lost: node {lost[0].node} died")
    assert {r.node.split("/")[0] for r in rows} == {HEAD_IP, WORKER_IP}  # one sweep, placed on both hosts
    assert all(r.node.startswith(f"{HEAD_IP}/") for r in rows if r.status == "ok")
    # --resume runs the lost case alone again, on the host that is left.
    head.spans.write_text("")
    again = head.run(*driver, "--resume")
    output = again.communicate(timeout=180)[0]
    assert again.returncode == 0, output[-3000:]
    _, resumed = load_run(out)
    assert sorted(r.key for r in resumed) == sorted(r.key for r in rows)
    assert {r.status for r in resumed} == {"ok"}
    ran = {line.split()[1] for line in head.spans.read_text().splitlines() if line.startswith("start ")}
    assert ran == {f"{lost[0].form}:{lost[0].B}x{lost[0].T}x{lost[0].C}"}
