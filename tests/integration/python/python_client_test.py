#!/usr/bin/python3
"""A second-language client of shmd: Python, with stubs generated from the same .proto files.

Starts a real shmd on a Unix socket in a fresh temporary directory, talks to it through
Python stubs that protoc generates at test time from api/shmd/v1/*.proto (and the standard
health and reflection protos), and then has two C++ processes (shmd_test_peer) move
messages through a ring the Python client created. Proves that the API is what the .proto
files say, to a client that shares no code with the daemon.

Run with Debian's interpreter (it has grpcio, grpc_tools and protobuf):

  /usr/bin/python3 tests/integration/python/python_client_test.py \
      --shmd build/server/shmd --peer build/tests/shmd_test_peer [unittest args, e.g. -v]
"""

import argparse
import ctypes
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
API_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "api"))
GRPC_PROTO_DIR = "/usr/share/grpc-proto"
HEALTH_PROTO = "grpc/health/v1/health.proto"
REFLECTION_PROTO = "grpc/reflection/v1alpha/reflection.proto"

NAMESPACE = "pytest"
RPC_TIMEOUT = 5.0  # seconds: the deadline of every RPC
DAEMON_START_TIMEOUT = 15.0  # until the health check answers SERVING
DAEMON_STOP_TIMEOUT = 5.0  # after SIGTERM, then SIGKILL
PEER_READY_TIMEOUT = 10.0
PEER_RUN_TIMEOUT = 60.0

# The ring the Python client creates and the C++ peers then use.
RING_ID = "orders"
RING_CAPACITY = 65536
# The data plane run: shmd_test_peer's message pattern (tests/common/message_pattern.h).
STREAM = 7
MESSAGES = 100000
MAX_MESSAGE = 8192  # under the ring's largest message (capacity/2 - 16 = 32752)

ARGS = None  # the parsed --shmd / --peer
pb = None  # the generated modules, once setUpClass has made them


# ---------------------------------------------------------------------------------------
# Helpers


def generate_stubs(out_dir):
    """Runs grpc_tools.protoc on the shmd API and the health and reflection protos."""
    import grpc_tools

    bundled = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    shmd_protos = sorted(
        os.path.join(API_DIR, "shmd", "v1", f)
        for f in os.listdir(os.path.join(API_DIR, "shmd", "v1"))
        if f.endswith(".proto")
    )
    if not shmd_protos:
        raise RuntimeError("no .proto files in %s/shmd/v1" % API_DIR)
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        "-I", API_DIR, "-I", bundled, "-I", GRPC_PROTO_DIR,
        "--python_out", out_dir, "--grpc_python_out", out_dir,
    ] + shmd_protos + [HEALTH_PROTO, REFLECTION_PROTO]
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=60)
    if run.returncode != 0:
        raise RuntimeError("protoc failed (exit %d):\n  %s\n%s"
                           % (run.returncode, " ".join(cmd), run.stdout))


def import_stubs(out_dir):
    """Imports the generated modules; returns them as attributes of one object."""
    import grpc

    sys.path.insert(0, out_dir)
    # The health and reflection modules are generated as grpc/health/v1/... and
    # grpc/reflection/v1alpha/..., inside the installed grpc package's namespace (their
    # _grpc.py files import them as "grpc.health.v1.health_pb2"). Let the grpc package
    # find them there: grpcio itself ships neither.
    grpc.__path__.append(os.path.join(out_dir, "grpc"))

    m = types.SimpleNamespace()
    for module in ("grpc.health.v1.health_pb2", "grpc.health.v1.health_pb2_grpc",
                   "grpc.reflection.v1alpha.reflection_pb2",
                   "grpc.reflection.v1alpha.reflection_pb2_grpc",
                   "shmd.v1.control_pb2", "shmd.v1.control_pb2_grpc", "shmd.v1.resources_pb2",
                   "shmd.v1.server_stats_pb2", "google.protobuf.descriptor_pb2"):
        setattr(m, module.rsplit(".", 1)[1], importlib.import_module(module))
    m.grpc = grpc
    return m


def _die_with_parent():
    """In the child before exec: be killed if the test process dies (no stray daemons)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def clean_env():
    """The environment without SHMD_* variables: the flags alone configure the daemon."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SHMD_")}


M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def pattern_size(stream, seq, max_size):
    """PatternSize of tests/common/message_pattern.h: the size of message `seq`."""
    r = splitmix64(((stream * 0x100000001B3) & M64) ^ seq)
    bucket = r % 100
    limit = 128 if bucket < 70 else 2048 if bucket < 95 else max_size
    limit = min(limit, max_size)
    return 1 + (r >> 8) % limit


class Process:
    """A child process whose stdout lines (stderr merged) are collected by a thread."""

    def __init__(self, what, argv, log_path=None):
        self.what = what
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        if log_path:  # the daemon: its output to a file, never a pipe nobody drains
            self.log_path = log_path
            self.log = open(log_path, "w")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT, env=clean_env(),
                                         preexec_fn=_die_with_parent)
            self.reader = None
        else:
            self.log_path = None
            self.log = None
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=clean_env(), text=True,
                                         preexec_fn=_die_with_parent)
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def output(self):
        if self.log_path:
            self.log.flush()
            with open(self.log_path) as f:
                return f.read()
        if self.reader:
            self.reader.join(timeout=1)
        with self.cond:
            return "\n".join(self.lines)

    def describe(self):
        return "%s (%s), exit status %s, output:\n%s" % (
            self.what, " ".join(self.argv), self.proc.poll(),
            "\n".join("    | " + l for l in self.output().splitlines()) or "    (none)")

    def wait_for_line(self, prefix, timeout):
        """The first line starting with `prefix`, or None at end of output or timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    return None
                self.cond.wait(left)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        self.kill()
        if self.reader:
            self.reader.join(timeout=2)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.log:
            self.log.close()


# ---------------------------------------------------------------------------------------
# The test


class PythonClientTest(unittest.TestCase):
    """One daemon for the class; the tests run in name order (test_1_..., test_2_...)."""

    @classmethod
    def setUpClass(cls):
        global pb
        cls.stub_dir = tempfile.mkdtemp(prefix="shmd-pystubs-")
        cls.addClassCleanup(shutil.rmtree, cls.stub_dir, True)
        generate_stubs(cls.stub_dir)
        pb = import_stubs(cls.stub_dir)

        # One directory for the socket and the objects.
        cls.dir = tempfile.mkdtemp(prefix="shmd-pytest-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.socket = os.path.join(cls.dir, "shmd.sock")
        if len(cls.socket.encode()) >= 108:
            raise RuntimeError("socket path %s is too long for a Unix socket; set TMPDIR "
                               "to a shorter directory" % cls.socket)
        cls.target = "unix://" + cls.socket
        cls.serving = False  # until the health check says SERVING
        cls.daemon = Process("shmd", [ARGS.shmd, "--listen", cls.target, "--shm-dir", cls.dir,
                                      "--namespace", NAMESPACE,
                                       "--metrics-address", "127.0.0.1:0"],
                             log_path=os.path.join(cls.dir, "shmd.log"))
        cls.addClassCleanup(cls._stop_daemon)

        cls.channel = pb.grpc.insecure_channel(cls.target)
        cls.addClassCleanup(cls.channel.close)
        cls.control = pb.control_pb2_grpc.ControlStub(cls.channel)
        cls.health = pb.health_pb2_grpc.HealthStub(cls.channel)
        cls.reflection = pb.reflection_pb2_grpc.ServerReflectionStub(cls.channel)
        cls._wait_until_serving()

    @classmethod
    def _wait_until_serving(cls):
        """Polls the health check until SERVING; fails if the daemon exits or is slow."""
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        last = "no answer yet"
        while time.monotonic() < deadline:
            if cls.daemon.proc.poll() is not None:
                raise RuntimeError("the daemon exited before serving: " + cls.daemon.describe())
            if os.path.exists(cls.socket):
                try:
                    r = cls.health.Check(pb.health_pb2.HealthCheckRequest(), timeout=0.5)
                    if r.status == pb.health_pb2.HealthCheckResponse.SERVING:
                        cls.serving = True
                        return
                    last = "health status " + pb.health_pb2.HealthCheckResponse.ServingStatus.Name(
                        r.status)
                except pb.grpc.RpcError as e:
                    last = "%s: %s" % (e.code().name, e.details())
            else:
                last = "no socket at " + cls.socket
            time.sleep(0.05)
        raise RuntimeError("the daemon did not answer the health check with SERVING within "
                           "%.0f s (last: %s); %s"
                           % (DAEMON_START_TIMEOUT, last, cls.daemon.describe()))

    @classmethod
    def _stop_daemon(cls):
        """SIGTERM, then SIGKILL after 5 s; a daemon that needs the kill fails the run."""
        d = cls.daemon
        try:
            if d.proc.poll() is not None:
                if not cls.serving:
                    return  # setUpClass has said why
                raise AssertionError("the daemon died during the test: " + d.describe())
            d.proc.send_signal(signal.SIGTERM)
            try:
                rc = d.proc.wait(timeout=DAEMON_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                d.kill()
                why = "the daemon did not exit within %.0f s of SIGTERM (killed with SIGKILL)"
                raise AssertionError(why % DAEMON_STOP_TIMEOUT + "; " + d.describe()) from None
            if rc != 0:
                raise AssertionError("after SIGTERM the daemon exited with status %d, expected "
                                     "0; %s" % (rc, d.describe()))
        finally:
            d.close()

    # --- helpers ---

    def spsc_spec(self, capacity):
        return pb.resources_pb2.Ring(kind=pb.resources_pb2.RING_KIND_SPSC,
                                     capacity_bytes=capacity)

    def object_path(self, ring_id):
        return os.path.join(self.dir, "shmd.%s.%s" % (NAMESPACE, ring_id))

    def call(self, method, request):
        """An RPC that must succeed; a failure names the call and the status."""
        name = method._method.decode() if hasattr(method, "_method") else str(method)
        try:
            return method(request, timeout=RPC_TIMEOUT)
        except pb.grpc.RpcError as e:
            self.fail("%s(%s) failed with %s (%s); expected success"
                      % (name, _one_line(request), e.code().name, e.details()))

    def assert_fails(self, method, request, code):
        """An RPC that must fail with `code`; returns the status message."""
        name = method._method.decode() if hasattr(method, "_method") else str(method)
        try:
            got = method(request, timeout=RPC_TIMEOUT)
        except pb.grpc.RpcError as e:
            if e.code() != code:
                self.fail("%s(%s): expected %s, got %s (%s)"
                          % (name, _one_line(request), code.name, e.code().name, e.details()))
            self.assertTrue(e.details(), "%s(%s) failed with %s but with an empty message"
                            % (name, _one_line(request), code.name))
            return e.details()
        self.fail("%s(%s): expected %s, but it succeeded and returned %s"
                  % (name, _one_line(request), code.name, _one_line(got)))

    def list_all_rings(self):
        rings, token = [], ""
        for _ in range(1000):
            r = self.call(self.control.ListRings,
                          pb.control_pb2.ListRingsRequest(page_size=2, page_token=token))
            rings.extend(r.rings)
            token = r.next_page_token
            if not token:
                return rings
        self.fail("ListRings kept returning a next_page_token after 1000 pages")

    def create_orders_ring(self):
        ring = self.call(self.control.CreateRing, pb.control_pb2.CreateRingRequest(
            ring_id=RING_ID, ring=self.spsc_spec(RING_CAPACITY)))
        self.assertEqual(ring.name, "rings/" + RING_ID,
                         "CreateRing returned the ring's name %r, expected %r"
                         % (ring.name, "rings/" + RING_ID))
        return ring

    # --- the tests ---

    def test_1_health_check_is_serving(self):
        r = self.call(self.health.Check, pb.health_pb2.HealthCheckRequest(service=""))
        status = pb.health_pb2.HealthCheckResponse.ServingStatus
        self.assertEqual(r.status, pb.health_pb2.HealthCheckResponse.SERVING,
                         "grpc.health.v1.Health/Check: expected SERVING, got %s"
                         % status.Name(r.status))

    def test_2_reflection_lists_and_describes_the_services(self):
        rq = pb.reflection_pb2.ServerReflectionRequest
        requests = [rq(list_services=""), rq(file_containing_symbol="shmd.v1.Control")]
        try:
            responses = list(self.reflection.ServerReflectionInfo(iter(requests),
                                                                  timeout=RPC_TIMEOUT))
        except pb.grpc.RpcError as e:
            self.fail("ServerReflectionInfo failed with %s (%s)" % (e.code().name, e.details()))
        self.assertEqual(len(responses), 2, "ServerReflectionInfo: 2 requests sent, expected 2 "
                         "responses, got %d: %s" % (len(responses), responses))

        listed = responses[0]
        self.assertEqual(listed.WhichOneof("message_response"), "list_services_response",
                         "expected a list_services_response, got %s" % _one_line(listed))
        services = {s.name for s in listed.list_services_response.service}
        for want in ("shmd.v1.Control", "grpc.health.v1.Health"):
            self.assertIn(want, services, "reflection ListServices: expected %s among the "
                          "services, got %s" % (want, sorted(services)))

        # The daemon's own descriptor of the service matches the .proto the stubs came from.
        described = responses[1]
        self.assertEqual(described.WhichOneof("message_response"), "file_descriptor_response",
                         "file_containing_symbol shmd.v1.Control: expected a "
                         "file_descriptor_response, got %s" % _one_line(described))
        files = {}
        for raw in described.file_descriptor_response.file_descriptor_proto:
            fd = pb.descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
        self.assertIn("shmd/v1/control.proto", files, "expected shmd/v1/control.proto among "
                      "the reflected files, got %s" % sorted(files))
        served = {m.name for s in files["shmd/v1/control.proto"].service if s.name == "Control"
                  for m in s.method}
        ours = set(pb.control_pb2.DESCRIPTOR.services_by_name["Control"].methods_by_name)
        self.assertEqual(served, ours, "the daemon's shmd.v1.Control methods differ from those "
                         "of api/shmd/v1/control.proto: only served %s, only in the .proto %s"
                         % (sorted(served - ours), sorted(ours - served)))

    def test_3_ring_control_plane(self):
        ctl, req = self.control, pb.control_pb2
        codes = pb.grpc.StatusCode

        ring = self.create_orders_ring()
        self.assertEqual(ring.kind, pb.resources_pb2.RING_KIND_SPSC,
                         "kind: expected RING_KIND_SPSC, got %s"
                         % pb.resources_pb2.RingKind.Name(ring.kind))
        self.assertEqual(ring.capacity_bytes, RING_CAPACITY, "capacity_bytes: expected %d, got %d"
                         % (RING_CAPACITY, ring.capacity_bytes))
        self.assertEqual(ring.info.path, self.object_path(RING_ID),
                         "info.path: expected %r, got %r" % (self.object_path(RING_ID),
                                                             ring.info.path))
        self.assertTrue(os.path.isfile(self.object_path(RING_ID)),
                        "CreateRing succeeded but there is no file %s; the directory holds %s"
                        % (self.object_path(RING_ID), sorted(os.listdir(self.dir))))

        # The same spec again: the same ring.
        again = self.create_orders_ring()
        for field in ("name", "kind", "capacity_bytes", "max_message_bytes", "mode"):
            self.assertEqual(getattr(again, field), getattr(ring, field),
                             "CreateRing again with the same spec: %s expected %r (the first "
                             "answer), got %r" % (field, getattr(ring, field),
                                                  getattr(again, field)))
        for field in ("path", "create_time", "generation", "file_bytes"):
            self.assertEqual(getattr(again.info, field), getattr(ring.info, field),
                             "CreateRing again with the same spec must return the existing ring:"
                             " info.%s expected %s, got %s"
                             % (field, _one_line(getattr(ring.info, field)),
                                _one_line(getattr(again.info, field))))

        # Another spec for the same id.
        self.assert_fails(ctl.CreateRing, req.CreateRingRequest(
            ring_id=RING_ID, ring=self.spsc_spec(2 * RING_CAPACITY)), codes.ALREADY_EXISTS)

        # Read it back, one and all.
        got = self.call(ctl.GetRing, req.GetRingRequest(name="rings/" + RING_ID))
        self.assertEqual((got.name, got.capacity_bytes, got.info.create_time),
                         (ring.name, ring.capacity_bytes, ring.info.create_time),
                         "GetRing: expected the ring CreateRing returned (name, capacity, "
                         "create_time), got %s" % _one_line(got))
        names = [r.name for r in self.list_all_rings()]
        self.assertIn("rings/" + RING_ID, names, "ListRings: expected rings/%s among %s"
                      % (RING_ID, names))
        self.assertEqual(names, sorted(names), "ListRings: expected the rings ordered by name, "
                         "got %s" % names)

        # What is not there, and what cannot be.
        self.assert_fails(ctl.GetRing, req.GetRingRequest(name="rings/missing"), codes.NOT_FOUND)
        for bad in ("no/slash", "", ".", "x" * 201, "sp ace"):
            self.assert_fails(ctl.CreateRing, req.CreateRingRequest(
                ring_id=bad, ring=self.spsc_spec(RING_CAPACITY)), codes.INVALID_ARGUMENT)
        for bad in ("rings/no/slash", "rings/", "", "pools/" + RING_ID):
            self.assert_fails(ctl.GetRing, req.GetRingRequest(name=bad), codes.INVALID_ARGUMENT)
        for bad_capacity in (1000, 0):
            self.assert_fails(ctl.CreateRing, req.CreateRingRequest(
                ring_id="badcap", ring=self.spsc_spec(bad_capacity)), codes.INVALID_ARGUMENT)
        self.assert_fails(ctl.GetRing, req.GetRingRequest(name="rings/badcap"), codes.NOT_FOUND)

        # The server's figures count it.
        stats = self.call(ctl.GetServerStats, req.GetServerStatsRequest())
        self.assertEqual(stats.ring_count, len(names), "GetServerStats.ring_count: expected %d "
                         "(the rings listed: %s), got %d" % (len(names), names, stats.ring_count))
        self.assertGreaterEqual(stats.ring_count, 1, "GetServerStats.ring_count: expected at "
                                "least 1 (rings/%s), got %d" % (RING_ID, stats.ring_count))
        self.assertGreaterEqual(stats.allocated_bytes, ring.info.file_bytes,
                                "GetServerStats.allocated_bytes: expected at least the ring's "
                                "%d file bytes, got %d"
                                % (ring.info.file_bytes, stats.allocated_bytes))
        self.assertEqual((stats.namespace, stats.shm_dir, stats.pid),
                         (NAMESPACE, self.dir, self.daemon.proc.pid),
                         "GetServerStats: expected (namespace, shm_dir, pid) %r, got %r"
                         % ((NAMESPACE, self.dir, self.daemon.proc.pid),
                            (stats.namespace, stats.shm_dir, stats.pid)))

    def test_4_cpp_peers_move_messages_through_a_ring_made_in_python(self):
        ctl, req = self.control, pb.control_pb2
        # Idempotent: the ring of test_3, or a new one when this test runs alone.
        ring = self.create_orders_ring()
        rings_before = self.call(ctl.GetServerStats, req.GetServerStatsRequest()).ring_count

        def peer(mode):
            p = Process("peer " + mode, [ARGS.peer, mode, self.dir, NAMESPACE, RING_ID,
                                         str(STREAM), str(MESSAGES), str(MAX_MESSAGE)])
            self.addCleanup(p.close)
            return p

        consumer = peer("spsc-consume")
        if consumer.wait_for_line("ready", PEER_READY_TIMEOUT) is None:
            if consumer.proc.poll() is not None:
                self.fail("the consumer exited without printing 'ready'; " + consumer.describe())
            self.fail("the consumer did not print 'ready' within %.0f s; %s"
                      % (PEER_READY_TIMEOUT, consumer.describe()))
        producer = peer("spsc-produce")

        # Both must exit 0; the first to fail ends the run (its partner would only wait).
        deadline = time.monotonic() + PEER_RUN_TIMEOUT
        peers = (consumer, producer)
        while any(p.proc.poll() is None for p in peers):
            if any(p.proc.poll() not in (None, 0) for p in peers):
                break
            if time.monotonic() > deadline:
                for p in peers:
                    p.kill()
                self.fail("the peers did not both finish within %.0f s (killed); %s\n%s"
                          % (PEER_RUN_TIMEOUT, consumer.describe(), producer.describe()))
            time.sleep(0.02)
        if any(p.proc.poll() != 0 for p in peers):
            time.sleep(0.2)  # let a partner that is about to fail too say why
            for p in peers:
                p.kill()
            self.fail("expected both peers to exit with status 0, got consumer %s, producer %s"
                      ";\n%s\n%s" % (consumer.proc.returncode, producer.proc.returncode,
                                     consumer.describe(), producer.describe()))

        # The peers' result lines: "done COUNT" and "done COUNT BYTES" (peer_main.cc).
        expected_bytes = sum(pattern_size(STREAM, seq, MAX_MESSAGE) for seq in range(MESSAGES))
        sent = producer.wait_for_line("done ", 1)
        self.assertEqual(sent, "done %d" % MESSAGES, "producer: expected the line 'done %d', "
                         "got %r; %s" % (MESSAGES, sent, producer.describe()))
        received = consumer.wait_for_line("done ", 1)
        self.assertEqual(received, "done %d %d" % (MESSAGES, expected_bytes),
                         "consumer: expected 'done %d %d' (every message received in order, "
                         "size and bytes checked), got %r; %s"
                         % (MESSAGES, expected_bytes, received, consumer.describe()))

        # The daemon reads the same figures from the ring's headers.
        usage = self.call(ctl.GetRing, req.GetRingRequest(name=ring.name)).usage
        want = dict(messages_written=MESSAGES, messages_read=MESSAGES,
                    bytes_written=expected_bytes, bytes_read=expected_bytes, used_bytes=0)
        got = {k: getattr(usage, k) for k in want}
        self.assertEqual(got, want, "GetRing(%s).usage after the run: expected %s, got %s"
                         % (ring.name, want, got))

        # Delete it; both peers have exited, so no force should be needed.
        try:
            ctl.DeleteRing(req.DeleteRingRequest(name=ring.name), timeout=RPC_TIMEOUT)
        except pb.grpc.RpcError as e:
            if e.code() != pb.grpc.StatusCode.FAILED_PRECONDITION:
                self.fail("DeleteRing(%s) failed with %s (%s)"
                          % (ring.name, e.code().name, e.details()))
            sys.stderr.write("note: DeleteRing(%s) without force: FAILED_PRECONDITION (%s) "
                             "although both peers exited; deleting with force\n"
                             % (ring.name, e.details()))
            self.call(ctl.DeleteRing, req.DeleteRingRequest(name=ring.name, force=True))
        self.assertFalse(os.path.exists(self.object_path(RING_ID)),
                         "DeleteRing succeeded but %s is still there" % self.object_path(RING_ID))
        self.assert_fails(ctl.GetRing, req.GetRingRequest(name=ring.name),
                          pb.grpc.StatusCode.NOT_FOUND)
        rings_after = self.call(ctl.GetServerStats, req.GetServerStatsRequest()).ring_count
        self.assertEqual(rings_after, rings_before - 1, "GetServerStats.ring_count after "
                         "DeleteRing: expected %d, got %d" % (rings_before - 1, rings_after))
        # Deleting again: NOT_FOUND, or success with allow_missing.
        self.assert_fails(ctl.DeleteRing, req.DeleteRingRequest(name=ring.name),
                          pb.grpc.StatusCode.NOT_FOUND)
        self.call(ctl.DeleteRing, req.DeleteRingRequest(name=ring.name, allow_missing=True))


def _one_line(message):
    """A protobuf message (or anything) on one line, for failure messages."""
    try:
        from google.protobuf import text_format
        return "{" + text_format.MessageToString(message, as_one_line=True) + "}"
    except Exception:
        return repr(message)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shmd", required=True, help="the shmd daemon binary")
    parser.add_argument("--peer", required=True, help="the shmd_test_peer binary")
    ARGS, rest = parser.parse_known_args()
    for flag, path in (("--shmd", ARGS.shmd), ("--peer", ARGS.peer)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            parser.error("%s %s: not an executable file" % (flag, path))
    ARGS.shmd = os.path.abspath(ARGS.shmd)
    ARGS.peer = os.path.abspath(ARGS.peer)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
