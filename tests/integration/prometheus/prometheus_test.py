#!/usr/bin/python3
"""A real Prometheus scrapes a real shmd while real processes move data through it.

Starts shmd (its own temporary directory, namespace and metrics port) and Debian's
Prometheus (loopback, storage in a temporary directory, a 1 s scrape and evaluation
interval, deploy/prometheus/shmd-rules.yml loaded). Creates a ring, a broadcast ring, a
pool and a region, and while Prometheus scrapes, shmd_test_client processes move data:
a paced SPSC producer (20,000 messages/s for 15 s) and its consumer, a broadcast
publisher that laps a slow subscriber, a pool holder and a pool user that runs the pool
dry and dies; a thread makes control calls, some of which fail. Then:

  - every PromQL expression of the Grafana dashboard (deploy/grafana/shmd.json, through
    deploy/grafana/dashboard_queries.py, variables set to the real instance, rings and
    pool, $__rate_interval 10s) runs against Prometheus's HTTP API, as an instant query
    inside the production window and as a range query over it: none may fail or be empty;
  - the rates Prometheus reports (messages and bytes written and read) are within 10% of
    what the producers counted, and the last scraped counters equal the counts exactly;
  - every rule of shmd-rules.yml is loaded with health "ok", and the alerts this traffic
    should trip are pending;
  - promtool check metrics (the live /metrics), check rules, test rules, check config.

Run with Debian's interpreter (it has grpcio, grpc_tools, protobuf and yaml):

  /usr/bin/python3 tests/integration/prometheus/prometheus_test.py \\
      --shmd build/server/shmd --client build/tests/shmd_test_client [unittest args, e.g. -v]
"""

import argparse
import atexit
import functools
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))

NAMESPACE = "promtest"
QUOTA = "1GiB"  # so shmd_shm_quota_bytes > 0 (the dashboard's quota panels)
JOB = "shmd"  # the job name shmd-rules.yml's ShmdDown expects

# Timeouts, seconds. Every wait polls and ends with one of these.
START_TIMEOUT = 20.0  # a daemon or Prometheus until it answers
SCRAPE_TIMEOUT = 20.0  # until Prometheus has scraped something we wait for
STOP_TIMEOUT = 5.0  # after SIGTERM, then SIGKILL
PEER_READY_TIMEOUT = 10.0
RPC_TIMEOUT = 5.0
HTTP_TIMEOUT = 10.0
TOOL_TIMEOUT = 60.0
POLL = 0.1

# Prometheus: scrape and evaluate every second; $__rate_interval must be at least four
# scrape intervals, and rate windows inside the 15 s production window.
SCRAPE_INTERVAL = 1
RATE_WINDOW = 10  # seconds, the dashboard's $__rate_interval here
TOLERANCE = 0.10  # Prometheus's rate against the producers' own count

# The SPSC stream (shmd_test_client spsc-stream / spsc-consume).
RING = "stream"
RING_CAPACITY = 1 << 20
STREAM = 11
RATE = 20000  # messages per second
SECONDS = 15
MAX_MESSAGE = 4096

# The broadcast ring: a publisher laps a subscriber that reads one message every 20 ms.
BROADCAST = "news"
BROADCAST_CAPACITY = 16384
BROADCAST_MAX = 256
BROADCAST_STREAM = 12
BROADCAST_RATE = 2000
SLOW_INTERVAL_MS = 20

# The pool: one process holds 12 of its 16 blocks; another wants 8, gets 4, fails (an
# allocation failure) and exits without freeing them (the daemon reclaims them).
POOL = "frames"
POOL_BLOCKS = 16
BLOCK_SIZE = 4096
HELD = 12
GREEDY = 8

REGION = "table"
REGION_SIZE = 1 << 20

ARGS = None  # parsed flags
pb = None  # the generated modules
dq = None  # deploy/grafana/dashboard_queries.py


# ---------------------------------------------------------------------------------------
# Helpers


def generate_stubs(out_dir):
    """Runs grpc_tools.protoc on api/shmd/v1/*.proto into out_dir."""
    import grpc_tools

    api_dir = os.path.join(ARGS.repo, "api")
    os.makedirs(out_dir, exist_ok=True)
    bundled = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = sorted(os.path.join(api_dir, "shmd", "v1", f)
                    for f in os.listdir(os.path.join(api_dir, "shmd", "v1"))
                    if f.endswith(".proto"))
    if not protos:
        raise RuntimeError("no .proto files in %s/shmd/v1" % api_dir)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", api_dir, "-I", bundled,
           "--python_out", out_dir, "--grpc_python_out", out_dir] + protos
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=TOOL_TIMEOUT)
    if run.returncode != 0:
        raise RuntimeError("protoc failed (exit %d):\n  %s\n%s"
                           % (run.returncode, " ".join(cmd), run.stdout))
    sys.path.insert(0, out_dir)
    import grpc

    m = types.SimpleNamespace(grpc=grpc)
    for module in ("shmd.v1.control_pb2", "shmd.v1.control_pb2_grpc", "shmd.v1.resources_pb2"):
        setattr(m, module.rsplit(".", 1)[1], importlib.import_module(module))
    return m


def clean_env():
    """The environment without SHMD_* variables: the flags alone configure the daemon."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SHMD_")}


def with_parent_death_signal(argv):
    """argv run so that it gets SIGKILL if the test dies (no stray daemons).

    setpriv sets PR_SET_PDEATHSIG and execs argv: no preexec_fn, which is unsafe in a
    process with threads (gRPC's, and our control-call thread).
    """
    if os.access("/usr/bin/setpriv", os.X_OK):
        return ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"] + argv
    return argv


def free_port():
    """A TCP port on loopback that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def indent(text, limit=None):
    lines = text.splitlines()
    if limit and len(lines) > limit:
        lines = ["... (%d earlier lines left out)" % (len(lines) - limit)] + lines[-limit:]
    return "\n".join("    | " + l for l in lines) or "    (none)"


class Process:
    """A child process; its output (stderr merged) goes to a log file, read on demand."""

    def __init__(self, what, argv, log_dir):
        self.what = what
        self.argv = argv
        self.log_path = os.path.join(log_dir, re.sub(r"[^\w.-]", "_", what) + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(with_parent_death_signal(argv), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=clean_env())
        self.lines_seen = None

    def output(self):
        if not self.log.closed:
            self.log.flush()
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError as e:
            return "(cannot read %s: %s)" % (self.log_path, e)

    def describe(self, limit=None):
        return "%s (%s), exit status %s, output:\n%s" % (
            self.what, " ".join(self.argv), self.proc.poll(), indent(self.output(), limit))

    def wait_for_line(self, pattern, timeout):
        """The first match of regex `pattern` at a line start, or None at exit or timeout."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            m = regex.search(self.output())
            if m:
                return m
            if exited or time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. True when SIGTERM was enough."""
        clean = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(STOP_TIMEOUT) is None:
                clean = False
                self.proc.kill()
                self.wait_exit(STOP_TIMEOUT)
        self.log.close()
        return clean


class PromError(Exception):
    pass


class Prometheus:
    """The HTTP API of the Prometheus under test."""

    def __init__(self, base):
        self.base = base

    def get(self, path, params=None, method="GET"):
        """The decoded JSON answer's "data"; PromError on an error answer or no answer."""
        url = self.base + path
        data = None
        if params:
            encoded = urllib.parse.urlencode(params, doseq=True)
            if method == "POST":
                data = encoded.encode()
            else:
                url += "?" + encoded
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data),
                                        timeout=HTTP_TIMEOUT) as r:
                body = r.read().decode()
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            try:
                j = json.loads(body)
                raise PromError("%s %s: HTTP %d, %s: %s" % (method, path, e.code,
                                                          j.get("errorType"), j.get("error")))
            except ValueError:
                raise PromError("%s %s: HTTP %d: %s" % (method, path, e.code, body[:500]))
        except (urllib.error.URLError, OSError) as e:
            raise PromError("%s %s: %s" % (method, path, e))
        j = json.loads(body)
        if j.get("status") != "success":
            raise PromError("%s %s: %s: %s" % (method, path, j.get("errorType"), j.get("error")))
        if j.get("warnings"):
            raise PromError("%s %s: warnings %s" % (method, path, j["warnings"]))
        return j["data"]

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        return self.get("/api/v1/query", params, method="POST")

    def query_range(self, expr, start, end, step):
        return self.get("/api/v1/query_range", {"query": expr, "start": "%.3f" % start,
                                                 "end": "%.3f" % end, "step": str(step)},
                        method="POST")

    def vector(self, expr, at=None):
        """An instant vector as [(labels, float value)]."""
        data = self.query(expr, at)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise PromError("%s: expected a vector, got a %s" % (expr, data["resultType"]))
        return [(s["metric"], float(s["value"][1])) for s in data["result"]]

    def value(self, expr, at=None):
        """The value of a query that must return exactly one sample, or None."""
        v = self.vector(expr, at)
        return v[0][1] if len(v) == 1 else None


def values_of(data):
    """Every sample value of a query answer (vector, matrix or scalar), as floats."""
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    if data["resultType"] == "vector":
        return [float(s["value"][1]) for s in data["result"]]
    if data["resultType"] == "matrix":
        return [float(v[1]) for s in data["result"] for v in s["values"]]
    return []


def note(cls, what):
    """A progress line on stderr, with the seconds since setUpClass began."""
    sys.stderr.write("[%5.1f s] %s\n" % (time.monotonic() - cls.t_setup, what))


def dump_on_failure(test):
    """On any failure of `test`, print every process's output after the message."""

    @functools.wraps(test)
    def run(self):
        try:
            test(self)
        except BaseException:
            type(self).dump_outputs()
            raise

    return run


# ---------------------------------------------------------------------------------------
# The test


class PrometheusTest(unittest.TestCase):
    """One daemon, one Prometheus and one run of traffic for the class; checks follow."""

    procs = []  # every child, in start order
    dumped = False

    @classmethod
    def setUpClass(cls):
        cls.t_setup = time.monotonic()
        cls.dir = tempfile.mkdtemp(prefix="shmd-prom-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.addClassCleanup(cls._stop_everything)
        # Also when unittest's cleanups do not run (Ctrl-C, SIGTERM from a runner).
        atexit.register(shutil.rmtree, cls.dir, True)
        atexit.register(cls._stop_quietly)
        try:
            cls._set_up()
        except BaseException:
            cls.dump_outputs()
            raise

    @classmethod
    def _set_up(cls):
        global pb, dq
        pb = generate_stubs(os.path.join(cls.dir, "stubs"))
        sys.path.insert(0, os.path.join(ARGS.repo, "deploy", "grafana"))
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        dq = importlib.import_module("dashboard_queries")
        cls.shm_dir = os.path.join(cls.dir, "shm")
        cls.logs = os.path.join(cls.dir, "logs")
        os.mkdir(cls.shm_dir)
        os.mkdir(cls.logs)

        cls._start_daemon()
        cls._create_objects()
        note(cls, "shmd serving, metrics at %s; objects created" % cls.metrics_url)
        cls._start_prometheus()
        note(cls, "Prometheus ready at %s" % cls.prom.base)
        # Every object scraped at least once before the traffic: counters start from a
        # zero sample, so increase() and rate() see all that moves.
        cls.wait_for_series(['shmd_ring_info{ring="%s"}' % RING,
                             'shmd_ring_info{ring="%s"}' % BROADCAST,
                             'shmd_pool_blocks{pool="%s"}' % POOL,
                             'shmd_region_size_bytes{region="%s"}' % REGION])
        note(cls, "Prometheus has scraped every object")
        cls._run_traffic()

    # --- processes ---

    @classmethod
    def start(cls, what, argv):
        p = Process(what, argv, cls.logs)
        cls.procs.append(p)
        return p

    @classmethod
    def client(cls, what, *args):
        return cls.start(what, [ARGS.client, args[0], cls.target] + [str(a) for a in args[1:]])

    @classmethod
    def dump_outputs(cls):
        if cls.dumped:
            return
        cls.dumped = True
        out = ["", "=== outputs of the processes (temporary directory %s) ===" % cls.dir]
        for p in cls.procs or getattr(cls, "stopped", []):
            limit = 80 if p.what == "prometheus" else None
            out.append(p.describe(limit))
        sys.stderr.write("\n".join(out) + "\n")

    @classmethod
    def _stop_quietly(cls):
        try:
            cls._stop_everything()
        except BaseException as e:
            sys.stderr.write("cleanup: %s\n" % e)

    @classmethod
    def _stop_everything(cls):
        """Stops the control thread and every child (newest first); checks the daemon's exit.

        Idempotent: a second call (atexit after unittest's cleanup) finds nothing to do.
        """
        if getattr(cls, "stop_calls", None):
            cls.stop_calls.set()
            cls.calls_thread.join(timeout=RPC_TIMEOUT + 1)
        if getattr(cls, "channel", None):
            cls.channel.close()
        problems = []
        procs, cls.procs = cls.procs, []
        cls.stopped = procs
        for p in reversed(procs):
            alive = p.proc.poll() is None
            clean = p.stop()
            if p is getattr(cls, "daemon", None):
                if not alive:
                    problems.append("the daemon died during the test")
                elif not clean:
                    problems.append("the daemon did not exit within %.0f s of SIGTERM (killed)"
                                    % STOP_TIMEOUT)
                elif p.proc.returncode != 0:
                    problems.append("after SIGTERM the daemon exited with status %d, expected 0"
                                    % p.proc.returncode)
        if problems:
            cls.dump_outputs()
            raise AssertionError("; ".join(problems))

    @classmethod
    def _start_daemon(cls):
        cls.socket = os.path.join(cls.dir, "shmd.sock")
        if len(cls.socket.encode()) >= 108:
            raise RuntimeError("socket path %s is too long for a Unix socket; set TMPDIR to a "
                               "shorter directory" % cls.socket)
        cls.target = "unix://" + cls.socket
        cls.daemon = cls.start("shmd", [
            ARGS.shmd, "--listen", cls.target, "--shm-dir", cls.shm_dir, "--namespace", NAMESPACE,
            "--metrics-address", "127.0.0.1:0", "--quota-bytes", QUOTA])
        m = cls.daemon.wait_for_line(r"^shmd .* serving on .*metrics (http://127\.0\.0\.1:(\d+)"
                                     r"/metrics)", START_TIMEOUT)
        if not m:
            raise RuntimeError("shmd did not print its 'serving ... metrics http://...' line "
                               "within %.0f s; %s" % (START_TIMEOUT, cls.daemon.describe()))
        cls.metrics_url = m.group(1)
        cls.instance = "127.0.0.1:" + m.group(2)
        cls.channel = pb.grpc.insecure_channel(cls.target)
        cls.control = pb.control_pb2_grpc.ControlStub(cls.channel)
        # The API answers too (the line is printed once it listens).
        cls.call(cls.control.GetServerStats, pb.control_pb2.GetServerStatsRequest())

    @classmethod
    def call(cls, method, request):
        try:
            return method(request, timeout=RPC_TIMEOUT)
        except pb.grpc.RpcError as e:
            raise AssertionError("%s failed with %s (%s)" % (
                method._method.decode() if hasattr(method, "_method") else method,
                e.code().name, e.details())) from None

    @classmethod
    def _create_objects(cls):
        req, res = pb.control_pb2, pb.resources_pb2
        cls.call(cls.control.CreateRing, req.CreateRingRequest(
            ring_id=RING, ring=res.Ring(kind=res.RING_KIND_SPSC, capacity_bytes=RING_CAPACITY)))
        news = cls.call(cls.control.CreateRing, req.CreateRingRequest(
            ring_id=BROADCAST, ring=res.Ring(kind=res.RING_KIND_BROADCAST,
                                             capacity_bytes=BROADCAST_CAPACITY,
                                             max_message_bytes=BROADCAST_MAX)))
        cls.broadcast_slots = news.slot_count
        cls.call(cls.control.CreatePool, req.CreatePoolRequest(
            pool_id=POOL, pool=res.Pool(block_size_bytes=BLOCK_SIZE, block_count=POOL_BLOCKS)))
        cls.call(cls.control.CreateRegion, req.CreateRegionRequest(
            region_id=REGION, region=res.Region(size_bytes=REGION_SIZE)))

    @classmethod
    def _start_prometheus(cls):
        rules = os.path.join(ARGS.repo, "deploy", "prometheus", "shmd-rules.yml")
        cls.prom_config = os.path.join(cls.dir, "prometheus.yml")
        with open(cls.prom_config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: %ds\n"
                    "  evaluation_interval: %ds\n"
                    "rule_files:\n"
                    "  - %s\n"
                    "scrape_configs:\n"
                    "  - job_name: %s\n"
                    "    scrape_interval: %ds\n"
                    "    scrape_timeout: %ds\n"
                    "    metrics_path: /metrics\n"
                    "    static_configs:\n"
                    "      - targets: ['%s']\n"
                    % (SCRAPE_INTERVAL, SCRAPE_INTERVAL, json.dumps(rules), JOB,
                       SCRAPE_INTERVAL, SCRAPE_INTERVAL, cls.instance))
        last = None
        for attempt in range(3):  # another process may take the free port first
            port = free_port()
            p = cls.start("prometheus" if attempt == 0 else "prometheus-%d" % attempt, [
                ARGS.prometheus, "--config.file=" + cls.prom_config,
                "--storage.tsdb.path=" + os.path.join(cls.dir, "data-%d" % attempt),
                "--web.listen-address=127.0.0.1:%d" % port, "--web.enable-lifecycle",
                "--log.level=info"])
            cls.prom = Prometheus("http://127.0.0.1:%d" % port)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and p.proc.poll() is None:
                try:
                    with urllib.request.urlopen(cls.prom.base + "/-/ready", timeout=1) as r:
                        if r.status == 200:
                            cls.prometheus = p
                            return
                except (urllib.error.URLError, OSError) as e:
                    last = e
                time.sleep(POLL)
            if p.proc.poll() is None:
                raise RuntimeError("Prometheus was not ready within %.0f s (last: %s); %s"
                                   % (START_TIMEOUT, last, p.describe(40)))
            if "address already in use" not in p.output():
                raise RuntimeError("Prometheus exited at start; " + p.describe(40))
        raise RuntimeError("Prometheus found its port taken 3 times; " + p.describe(40))

    @classmethod
    def wait_for_series(cls, selectors, timeout=SCRAPE_TIMEOUT):
        """Polls until every selector has a sample in Prometheus."""
        deadline = time.monotonic() + timeout
        missing = list(selectors)
        last = ""
        while True:
            try:
                missing = [s for s in missing if not cls.prom.vector(s)]
            except PromError as e:
                last = " (last error: %s)" % e
            if not missing:
                return
            if time.monotonic() > deadline:
                targets = ""
                try:
                    targets = json.dumps(cls.prom.get("/api/v1/targets")["activeTargets"],
                                         indent=1)
                except PromError as e:
                    targets = str(e)
                raise RuntimeError("Prometheus had no sample of %s within %.0f s%s; its "
                                   "targets: %s" % (missing, timeout, last, targets))
            time.sleep(POLL * 2)

    # --- the traffic ---

    @classmethod
    def _control_calls(cls):
        """Until stopped, four calls every 0.2 s: two succeed, two fail (NOT_FOUND and
        INVALID_ARGUMENT), so the control-plane panels have rates and error codes."""
        req, res = pb.control_pb2, pb.resources_pb2
        calls = [
            (cls.control.GetServerStats, req.GetServerStatsRequest()),
            (cls.control.ListRings, req.ListRingsRequest()),
            (cls.control.GetRing, req.GetRingRequest(name="rings/missing")),
            (cls.control.CreateRing, req.CreateRingRequest(
                ring_id="bad id", ring=res.Ring(kind=res.RING_KIND_SPSC, capacity_bytes=4096))),
        ]
        while not cls.stop_calls.is_set():
            for method, request in calls:
                try:
                    method(request, timeout=RPC_TIMEOUT)
                    code = "OK"
                except pb.grpc.RpcError as e:
                    code = e.code().name
                with cls.codes_lock:
                    cls.codes[code] = cls.codes.get(code, 0) + 1
            cls.stop_calls.wait(0.2)

    @classmethod
    def wait_ready(cls, p, pattern="^ready "):
        if not p.wait_for_line(pattern, PEER_READY_TIMEOUT):
            raise RuntimeError("%s did not print %r within %.0f s; %s"
                               % (p.what, pattern, PEER_READY_TIMEOUT, p.describe()))

    @classmethod
    def _run_traffic(cls):
        cls.codes, cls.codes_lock = {}, threading.Lock()
        cls.stop_calls = threading.Event()
        cls.calls_thread = threading.Thread(target=cls._control_calls, daemon=True)
        cls.calls_thread.start()

        # Consumers first, so no message is sent before its reader is there.
        count = RATE * SECONDS
        consumer = cls.client("consumer", "spsc-consume", RING, STREAM, count, MAX_MESSAGE)
        cls.wait_ready(consumer)
        # It stops on its own a second after the publisher, so the test does not depend on
        # how long an always-lapped subscriber takes to drain and hear kPeerGone.
        slow = cls.client("slow subscriber", "broadcast-slow", BROADCAST, SECONDS + 1,
                          SLOW_INTERVAL_MS)
        cls.wait_ready(slow)
        holder = cls.client("pool holder", "pool-hold", POOL, HELD)
        cls.wait_ready(holder, "^held %d$" % HELD)

        producer = cls.client("producer", "spsc-stream", RING, STREAM, RATE, SECONDS,
                              MAX_MESSAGE)
        publisher = cls.client("publisher", "broadcast-stream", BROADCAST, BROADCAST_STREAM,
                               BROADCAST_RATE, SECONDS, BROADCAST_MAX)
        cls.wait_ready(producer)
        cls.wait_ready(publisher)
        note(cls, "traffic started: %d messages/s for %d s on rings/%s, %d/s on rings/%s"
             % (RATE, SECONDS, RING, BROADCAST_RATE, BROADCAST))

        # While they run: a pool user that finds the pool empty and exits holding blocks.
        greedy = cls.client("greedy pool user", "pool-hold", POOL, GREEDY)
        if greedy.wait_exit(PEER_READY_TIMEOUT) != 1 or "error allocate" not in greedy.output():
            raise RuntimeError("expected the greedy pool user to fail ('error allocate', exit "
                               "status 1) after %d of its %d blocks; %s"
                               % (POOL_BLOCKS - HELD, GREEDY, greedy.describe()))

        done = r"^sent (\d+) in ([\d.]+) seconds (\d+) bytes from ([\d.]+) to ([\d.]+)$"
        cls.sent = {}
        for p in (producer, publisher):
            m = p.wait_for_line(done, SECONDS + 30)
            if not m or p.wait_exit(5) != 0:
                raise RuntimeError("%s did not finish with a 'sent ...' line and status 0 "
                                   "within %d s; %s" % (p.what, SECONDS + 30, p.describe()))
            cls.sent[p.what] = dict(count=int(m.group(1)), seconds=float(m.group(2)),
                                    bytes=int(m.group(3)), start=float(m.group(4)),
                                    end=float(m.group(5)))
        m = consumer.wait_for_line(r"^done (\d+) (\d+)$", 30)
        if not m or consumer.wait_exit(5) != 0:
            raise RuntimeError("the consumer did not finish with 'done COUNT BYTES' and status "
                               "0; %s" % consumer.describe())
        if (int(m.group(1)), int(m.group(2))) != (count, cls.sent["producer"]["bytes"]):
            raise RuntimeError("the consumer received %s messages, %s bytes; the producer sent "
                               "%d, %d" % (m.group(1), m.group(2), count,
                                           cls.sent["producer"]["bytes"]))
        m = slow.wait_for_line(r"^received (\d+) lost (\d+)$", 30)
        if not m or slow.wait_exit(5) != 0 or int(m.group(2)) == 0:
            raise RuntimeError("expected the slow subscriber to end with 'received N lost L', "
                               "L > 0, and status 0; %s" % slow.describe())
        cls.lost = int(m.group(2))
        note(cls, "traffic done: %s; the slow subscriber received %s and lost %d"
             % (cls.sent, m.group(1), cls.lost))

        # The moment every query is evaluated at: its rate window lies inside the SPSC
        # production window with a margin on both sides.
        run = cls.sent["producer"]
        cls.at = run["end"] - 2.0
        if cls.at - RATE_WINDOW < run["start"] + 1.0:
            raise RuntimeError("the production window %s is too short for a %d s rate window"
                               % (run, RATE_WINDOW))
        # Prometheus has a sample after the run's end: the counters' final values.
        cls.wait_until(lambda: cls.prom.value(
            'shmd_ring_messages_written_total{ring="%s"}' % RING) == run["count"],
            "the last scrape of rings/%s to show all %d messages written"
            % (RING, run["count"]))
        note(cls, "Prometheus has the final counters")

    @classmethod
    def wait_until(cls, predicate, what, timeout=SCRAPE_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except PromError as e:
                last = e
            time.sleep(POLL * 2)
        raise AssertionError("timed out after %.0f s waiting for %s%s"
                             % (timeout, what, " (last error: %s)" % last if last else ""))

    # --- the checks ---

    def dashboard_queries(self):
        return dq.queries(os.path.join(ARGS.repo, "deploy", "grafana", "shmd.json"),
                          instance=re.escape(self.instance),
                          ring="%s|%s" % (RING, BROADCAST), pool=POOL,
                          rate_interval="%ds" % RATE_WINDOW)

    @dump_on_failure
    def test_1_every_dashboard_query_answers_inside_the_run(self):
        queries = self.dashboard_queries()
        self.assertGreater(len(queries), 0, "dashboard_queries found no query in shmd.json")
        problems, summary = [], []
        for q in queries:
            where = "panel %r (id %s) target %s: %s" % (q.panel, q.panel_id, q.ref_id, q.expr)
            try:
                data = self.prom.query(q.expr, at=self.at)
            except PromError as e:
                problems.append("%s\n      error: %s" % (where, e))
                continue
            vals = values_of(data)
            if not vals:
                problems.append("%s\n      empty result at %.3f" % (where, self.at))
            elif all(v != v for v in vals):
                problems.append("%s\n      only NaN: %s" % (where, data["result"]))
            series = len(data["result"]) if data["resultType"] == "vector" else 1
            summary.append("%-45s %s  %2d series, e.g. %.6g"
                           % (q.panel[:45], q.ref_id, series, next((v for v in vals if v == v),
                                                                    float("nan"))))
        if problems:
            self.fail("%d of the dashboard's %d queries failed, evaluated at %.3f (inside the "
                      "traffic):\n  %s" % (len(problems), len(queries), self.at,
                                           "\n  ".join(problems)))
        sys.stderr.write("%d dashboard queries answered at %.3f:\n  %s\n"
                         % (len(queries), self.at, "\n  ".join(summary)))

    @dump_on_failure
    def test_2_every_dashboard_query_answers_as_a_range_query(self):
        # As Grafana asks: over the whole production window, one point per second.
        run = self.sent["producer"]
        problems = []
        for q in self.dashboard_queries():
            try:
                data = self.prom.query_range(q.expr, run["start"], run["end"], SCRAPE_INTERVAL)
            except PromError as e:
                problems.append("panel %r target %s: %s\n      error: %s"
                                % (q.panel, q.ref_id, q.expr, e))
                continue
            if not [v for v in values_of(data) if v == v]:
                problems.append("panel %r target %s: %s\n      no value over %.3f..%.3f"
                                % (q.panel, q.ref_id, q.expr, run["start"], run["end"]))
        if problems:
            self.fail("%d range queries of the dashboard failed (%.3f..%.3f, step %ds):\n  %s"
                      % (len(problems), run["start"], run["end"], SCRAPE_INTERVAL,
                         "\n  ".join(problems)))

    @dump_on_failure
    def test_3_dashboard_variables_list_the_real_objects(self):
        path = os.path.join(ARGS.repo, "deploy", "grafana", "shmd.json")
        want = {"instance": {self.instance}, "ring": {RING, BROADCAST}, "pool": {POOL}}
        selectors = dq.variable_selectors(path, instance=re.escape(self.instance))
        self.assertEqual(sorted(v for v, _, _ in selectors), sorted(want),
                         "expected label_values() variables %s, got %s" % (sorted(want),
                                                                            selectors))
        for name, selector, label in selectors:
            data = self.prom.get("/api/v1/series", {"match[]": selector,
                                                    "start": "%.3f" % (self.at - 60),
                                                    "end": "%.3f" % self.at})
            got = {s.get(label) for s in data}
            self.assertTrue(want[name] <= got, "variable $%s = label_values(%s, %s): expected "
                            "%s among the values, got %s" % (name, selector, label,
                                                             sorted(want[name]), sorted(got)))

    @dump_on_failure
    def test_4_throughput_matches_what_the_producers_counted(self):
        checks = [("producer", RING, "messages_written", "count"),
                  ("producer", RING, "bytes_written", "bytes"),
                  ("producer", RING, "messages_read", "count"),
                  ("producer", RING, "bytes_read", "bytes"),
                  ("publisher", BROADCAST, "messages_written", "count"),
                  ("publisher", BROADCAST, "bytes_written", "bytes")]
        report, problems = [], []
        for who, ring, counter, unit in checks:
            run = self.sent[who]
            at = run["end"] - 2.0
            expected = run[unit] / run["seconds"]
            expr = 'rate(shmd_ring_%s_total{job="%s", instance="%s", ring="%s"}[%ds])' % (
                counter, JOB, self.instance, ring, RATE_WINDOW)
            got = self.prom.value(expr, at)
            line = "%-48s at end-2s: %12.1f /s; %s counted %d %s in %.3f s = %12.1f /s" % (
                expr.split("{")[0][5:] + "{ring=%s}" % ring, got if got is not None else -1,
                who, run[unit], unit, run["seconds"], expected)
            if got is not None:
                line += " (%+.2f%%)" % (100 * (got - expected) / expected)
            report.append(line)
            if got is None or abs(got - expected) > TOLERANCE * expected:
                problems.append(line + "\n      query: " + expr)
        sys.stderr.write("throughput, Prometheus against the producers:\n  %s\n"
                         % "\n  ".join(report))
        if problems:
            self.fail("Prometheus's rate is not within %d%% of what the producers counted:\n  %s"
                      % (TOLERANCE * 100, "\n  ".join(problems)))

        # The last scrapes hold the exact totals.
        run, pub = self.sent["producer"], self.sent["publisher"]
        exact = {'shmd_ring_messages_written_total{ring="%s"}' % RING: run["count"],
                 'shmd_ring_bytes_written_total{ring="%s"}' % RING: run["bytes"],
                 'shmd_ring_messages_read_total{ring="%s"}' % RING: run["count"],
                 'shmd_ring_bytes_read_total{ring="%s"}' % RING: run["bytes"],
                 'shmd_ring_messages_written_total{ring="%s"}' % BROADCAST: pub["count"],
                 'shmd_ring_bytes_written_total{ring="%s"}' % BROADCAST: pub["bytes"]}
        got = {}

        def all_equal():
            got.update({e: self.prom.value(e) for e in exact})
            return got == exact

        try:
            self.wait_until(all_equal, "the final counters", timeout=10)
        except AssertionError:
            self.fail("the last scraped counters differ from the producers' and consumer's "
                      "counts: expected %s, got %s" % (exact, got))
        lapped = self.prom.value('shmd_ring_lapped_messages_total{ring="%s"}' % BROADCAST)
        self.assertEqual(lapped, self.lost, "shmd_ring_lapped_messages_total{ring=%s}: expected "
                         "the %d messages the slow subscriber reported lost, got %s"
                         % (BROADCAST, self.lost, lapped))

    @dump_on_failure
    def test_5_every_rule_is_loaded_and_healthy(self):
        import yaml

        with open(os.path.join(ARGS.repo, "deploy", "prometheus", "shmd-rules.yml")) as f:
            spec = yaml.safe_load(f)
        want = {g["name"]: len(g["rules"]) for g in spec["groups"]}
        state = {}

        def all_evaluated():
            groups = self.prom.get("/api/v1/rules")["groups"]
            state["groups"] = groups
            return ({g["name"]: len(g["rules"]) for g in groups} == want and
                    all(r["health"] != "unknown" for g in groups for r in g["rules"]))

        try:
            self.wait_until(all_evaluated, "every rule to be loaded and evaluated")
        except AssertionError as e:
            self.fail("%s: expected groups %s, /api/v1/rules says %s"
                      % (e, want, json.dumps(state.get("groups"), indent=1)))
        bad = ["%s / %s: health %r, lastError %r" % (g["name"], r["name"], r["health"],
                                                     r.get("lastError"))
               for g in state["groups"] for r in g["rules"]
               if r["health"] != "ok" or r.get("lastError")]
        if bad:
            self.fail("rules that Prometheus did not evaluate cleanly:\n  " + "\n  ".join(bad))

    @dump_on_failure
    def test_6_the_traffic_trips_the_alerts_it_should(self):
        # Each has a `for:` of a minute or more: pending (firing later) is what shows the
        # expression matches real series with real labels.
        expected = [("ShmdBroadcastSubscribersLapped", {"ring": BROADCAST}),
                    ("ShmdPoolExhausted", {"pool": POOL, "cause": "alloc_failures"}),
                    ("ShmdDeadEndpoints", {"severity": "warning"}),
                    ("ShmdControlPlaneErrors", {"job": JOB})]
        alerts = []

        def missing():
            alerts[:] = self.prom.get("/api/v1/alerts")["alerts"]
            return [(name, labels) for name, labels in expected
                    if not any(a["labels"].get("alertname") == name and
                               a["state"] in ("pending", "firing") and
                               a["labels"].get("instance") == self.instance and
                               all(a["labels"].get(k) == v for k, v in labels.items())
                               for a in alerts)]

        try:
            self.wait_until(lambda: not missing(), "the expected alerts", timeout=10)
        except AssertionError:
            self.fail("expected these alerts pending or firing for instance %s: %s; "
                      "/api/v1/alerts has %s" % (self.instance, missing(),
                                                 json.dumps(alerts, indent=1)))
        down = [a for a in alerts if a["labels"].get("alertname") == "ShmdDown"]
        self.assertEqual(down, [], "ShmdDown is active although Prometheus scrapes shmd")

    @dump_on_failure
    def test_7_promtool_checks_the_live_metrics(self):
        with urllib.request.urlopen(self.metrics_url, timeout=HTTP_TIMEOUT) as r:
            body = r.read()
            content_type = r.headers.get("Content-Type", "")
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"),
                        "Content-Type of %s: expected text/plain; version=0.0.4, got %r"
                        % (self.metrics_url, content_type))
        for name in ("shmd_ring_messages_written_total", "shmd_pool_blocks_in_use",
                     "shmd_region_size_bytes", "grpc_server_handled_total"):
            self.assertIn(name.encode(), body, "%s missing from %s" % (name, self.metrics_url))
        run = subprocess.run([ARGS.promtool, "check", "metrics"], input=body,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=TOOL_TIMEOUT)
        self.assertEqual(run.returncode, 0, "promtool check metrics on %s failed (exit %d):\n%s"
                         % (self.metrics_url, run.returncode,
                            indent(run.stdout.decode(errors="replace"))))

    @dump_on_failure
    def test_8_promtool_checks_and_tests_the_rules(self):
        prom_dir = os.path.join(ARGS.repo, "deploy", "prometheus")
        for args in (["check", "rules", os.path.join(prom_dir, "shmd-rules.yml")],
                     ["test", "rules", os.path.join(prom_dir, "shmd-rules_test.yml")],
                     ["check", "config", self.prom_config]):
            run = subprocess.run([ARGS.promtool] + args, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=TOOL_TIMEOUT,
                                 cwd=ARGS.repo)
            self.assertEqual(run.returncode, 0, "promtool %s failed (exit %d):\n%s"
                             % (" ".join(args), run.returncode, indent(run.stdout)))

    @dump_on_failure
    def test_9_control_calls_were_answered(self):
        # The thread's own view: the failing calls failed as they should, none timed out.
        with self.codes_lock:
            codes = dict(self.codes)
        self.assertTrue({"OK", "NOT_FOUND", "INVALID_ARGUMENT"} <= set(codes),
                        "control calls by status: expected OK, NOT_FOUND and INVALID_ARGUMENT, "
                        "got %s" % codes)
        self.assertEqual(set(codes) - {"OK", "NOT_FOUND", "INVALID_ARGUMENT"}, set(),
                         "unexpected status codes of the control calls: %s" % codes)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shmd", required=True, help="the shmd daemon binary")
    parser.add_argument("--client", required=True, help="the shmd_test_client binary")
    parser.add_argument("--repo", default=DEFAULT_REPO,
                        help="the source tree (deploy/, api/); default: this file's")
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    parser.add_argument("--promtool", default="/usr/bin/promtool")
    ARGS, rest = parser.parse_known_args()
    for flag in ("shmd", "client", "prometheus", "promtool"):
        path = getattr(ARGS, flag)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            parser.error("--%s %s: not an executable file" % (flag, path))
        setattr(ARGS, flag, os.path.abspath(path))
    ARGS.repo = os.path.abspath(ARGS.repo)
    for f in ("deploy/grafana/shmd.json", "deploy/grafana/dashboard_queries.py",
              "deploy/prometheus/shmd-rules.yml", "deploy/prometheus/shmd-rules_test.yml"):
        if not os.path.isfile(os.path.join(ARGS.repo, f)):
            parser.error("--repo %s: no %s there" % (ARGS.repo, f))
    # A runner's SIGTERM ends the run the way Ctrl-C does; the cleanups then stop the
    # processes (which also get SIGKILL from the kernel if this process dies abruptly).
    signal.signal(signal.SIGTERM, _on_sigterm)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
