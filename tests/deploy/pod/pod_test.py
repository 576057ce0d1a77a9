#!/usr/bin/python3
"""The example Pod of deploy/k8s, simulated on this machine with the real binaries.

There is no cluster and no container runtime here, so this test plays kubelet and
runtime with the kernel's own tools, taking everything from the rendered manifest
(`kubectl kustomize deploy/k8s/overlays/native`), not from a copy of it:

  - the Pod's network namespace (`unshare --net`, loopback up): the daemon's TCP health
    and metrics ports are the manifest's own, and only the Pod sees them;
  - each volume an `emptyDir` with `medium: Memory`: a tmpfs of the volume's `sizeLimit`,
    group `fsGroup` with the setgid bit and mode 2777, as the kubelet makes it;
  - each container its own mount and PID namespaces (no `shareProcessNamespace`), a
    read-only root (`readOnlyRootFilesystem`) holding only the image's files (the host's
    /usr and /etc, read-only, and the built binaries in /usr/local/bin, as the Dockerfile
    installs them), /proc, /dev/null, and the two volumes at the manifest's mount paths;
  - each container's process under its `runAsUser`/`runAsGroup`, with `fsGroup` as its
    supplementary group, no capabilities and no_new_privs (`allowPrivilegeEscalation:
    false`, `drop: [ALL]`); the image's environment (Dockerfile ENV) plus the
    container's `env`; its `command`/`args`, or the image's entrypoint (`shmd`);
  - the native sidecar started first; the apps only once its `startupProbe` passes,
    run as the kubelet's gRPC probe would (grpc.health.v1 on the probe's port, from the
    Pod's network namespace); a container that exits is restarted (`restartPolicy:
    Always`).

Then: the producer and consumer apps (different uids, one group) move data end to end,
several runs, every message checked by the consumer; the socket and the objects carry the
modes and group the manifests ask for; an ephemeral container (uid 65533, as `kubectl
debug` would add) reads the ring through shmdctl. Finally the consumer's container is
killed (SIGKILL to its PID namespace's init, as the runtime does on an OOM kill) while the
producer streams: the producer, in another PID namespace, must not hang; the dead
consumer's endpoint and lease must be cleared so its restarted container can take the
consumer role again, and data must flow end to end again.

Two env values are overridden for speed, as a kustomize patch would: MESSAGES (200,000)
and PAUSE_SECONDS (1). Needs root (namespaces, mounts, setpriv), kubectl, and
/usr/bin/python3 with yaml. Exit status 77 (CTest: skipped) when not root.

  /usr/bin/python3 tests/deploy/pod/pod_test.py --repo . --bin-dir build [-v]
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

ARGS = None
MESSAGES = 200_000
POD_ENV_OVERRIDES = {"MESSAGES": str(MESSAGES), "PAUSE_SECONDS": "1"}
# Where the image's binaries come from in the build tree (the Dockerfile's install list).
IMAGE_BINARIES = {
    "shmd": "server/shmd",
    "shmdctl": "server/shmdctl/shmdctl",
    "named_channel": "examples/named_channel",
    "channel_demo": "examples/channel_demo",
}
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(*parts):
    if ARGS.verbose:
        print("pod_test:", *parts, file=sys.stderr, flush=True)


def quantity_bytes(q):
    """A Kubernetes quantity ("256Mi", "1G", "1024") in bytes."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    if not m:
        raise ValueError(f"quantity {q!r} is not understood")
    unit = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2)]
    return int(m.group(1)) * unit


def dockerfile_env(path):
    """The ENV of the Dockerfile's last stage, as a dict."""
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    stages = re.split(r"(?m)^FROM ", text)
    env = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def dockerfile_entrypoint(path):
    with open(path) as f:
        text = f.read()
    m = re.findall(r"(?m)^ENTRYPOINT (\[.*\])$", text)
    return json.loads(m[-1])


def render_pod_spec(repo):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise unittest.SkipTest("kubectl is not on PATH (needed for 'kubectl kustomize')")
    out = subprocess.run([kubectl, "kustomize", os.path.join(repo, "deploy/k8s/overlays/native")],
                         check=True, capture_output=True, text=True).stdout
    deployments = [d for d in yaml.safe_load_all(out) if d and d.get("kind") == "Deployment"]
    assert len(deployments) == 1, f"expected one Deployment, got {len(deployments)}"
    return deployments[0]["spec"]["template"]["spec"]


class Container:
    """One container: its namespaces, root, identity and process (a supervisor restarts it)."""

    def __init__(self, pod, spec, sidecar):
        self.pod = pod
        self.spec = spec
        self.name = spec["name"]
        self.sidecar = sidecar
        self.proc = None
        self.starts = 0
        self.restart_at = None  # set while it waits out a restart back-off
        self.log_path = os.path.join(pod.work, f"{self.name}.log")
        self.root = os.path.join(pod.work, "roots", self.name)
        os.makedirs(self.root)

    def security(self, key):
        """A security setting: the container's, else the Pod's."""
        c = self.spec.get("securityContext", {})
        return c[key] if key in c else self.pod.spec.get("securityContext", {}).get(key)

    def argv(self):
        if "command" in self.spec:
            return self.spec["command"] + self.spec.get("args", [])
        return self.pod.entrypoint + self.spec.get("args", [])

    def env(self):
        env = {"PATH": IMAGE_PATH, "HOME": "/nonexistent"}
        env.update(self.pod.image_env)
        for e in self.spec.get("env", []):
            env[e["name"]] = str(e["value"])
        env.update({k: v for k, v in POD_ENV_OVERRIDES.items() if k in env})
        return env

    def launch_script(self, argv, env):
        """What runs as root inside the container's new mount and PID namespaces: build
        the root, then drop to the container's identity and exec its process."""
        r = shlex.quote(self.root)
        lines = [
            "set -e",
            f"mount -t tmpfs -o size=1m,mode=0755 root {r}",
            f"cd {r}",
            "mkdir -p usr etc proc dev tmp run",
            "ln -s usr/bin bin; ln -s usr/sbin sbin; ln -s usr/lib lib",
            "[ -d /usr/lib64 ] && ln -s usr/lib64 lib64",
            f"mount --rbind /usr {r}/usr && mount -o remount,bind,ro {r}/usr",
            f"mount --bind {shlex.quote(self.pod.image_bin)} {r}/usr/local/bin",
            f"mount -o remount,bind,ro {r}/usr/local/bin",
            f"mount --rbind /etc {r}/etc && mount -o remount,bind,ro {r}/etc",
            f"touch {r}/dev/null && mount --bind /dev/null {r}/dev/null",
            f"mount -t proc proc {r}/proc",
        ]
        for m in self.spec.get("volumeMounts", []):
            target = r + shlex.quote(m["mountPath"])
            lines.append(f"mkdir -p {target} && mount --bind {shlex.quote(self.pod.volumes[m['name']])} {target}")
        if self.security("readOnlyRootFilesystem"):
            lines.append(f"mount -o remount,ro {r}")
        uid, gid = self.security("runAsUser"), self.security("runAsGroup")
        groups = [str(self.pod.spec["securityContext"]["fsGroup"])]
        drop = self.spec.get("securityContext", {}).get("capabilities", {}).get("drop", [])
        setpriv = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid}",
                   f"--groups={','.join(groups)}"]
        if self.security("allowPrivilegeEscalation") is False:
            setpriv.append("--no-new-privs")
        if "ALL" in drop:
            setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
        env_argv = ["/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in env.items()]
        lines.append("exec chroot " + r + " " + shlex.join(setpriv + ["--"] + env_argv + argv))
        return "\n".join(lines)

    def start(self):
        script = self.launch_script(self.argv(), self.env())
        self.starts += 1
        log(f"starting container {self.name} (start {self.starts})")
        out = open(self.log_path, "a")
        out.write(f"--- start {self.starts} ---\n")
        out.flush()
        # The Pod's network namespace; a mount and PID namespace of the container's own.
        # --kill-child: if the unshare process is killed, its child (the container's init)
        # dies too; killing the init kills everything in its PID namespace.
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={self.pod.netns}", "--",
             "unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
             "--", "/bin/sh", "-c", script],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        out.close()

    def init_pid(self):
        """The container's init (pid 1 in its namespace), as this namespace sees it."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                children = f.read().split()
        except OSError:
            return None
        # nsenter execs unshare, which forks the init.
        return int(children[0]) if children else None

    def output(self):
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Pod:
    def __init__(self, repo, bin_dir):
        self.spec = render_pod_spec(repo)
        self.work = tempfile.mkdtemp(prefix="shmd-pod-")
        os.chmod(self.work, 0o755)
        self.mounts = []
        dockerfile = os.path.join(repo, "deploy/docker/Dockerfile")
        self.image_env = dockerfile_env(dockerfile)
        self.entrypoint = dockerfile_entrypoint(dockerfile)
        # The image's /usr/local/bin.
        self.image_bin = os.path.join(self.work, "image-bin")
        os.makedirs(self.image_bin)
        for name, rel in IMAGE_BINARIES.items():
            shutil.copy2(os.path.join(bin_dir, rel), os.path.join(self.image_bin, name))
        os.chmod(self.image_bin, 0o755)
        self.netns_holder = None
        self.netns = None
        self.volumes = {}
        self.containers = []

    def make_network(self):
        # A process that only holds the Pod's network namespace (the "pause" container).
        self.netns_holder = subprocess.Popen(
            ["unshare", "--net", "--", "/bin/sh", "-c", "ip link set lo up && exec sleep infinity"],
            start_new_session=True)
        self.netns = f"/proc/{self.netns_holder.pid}/ns/net"
        for _ in range(100):
            r = subprocess.run(["nsenter", f"--net={self.netns}", "ip", "-o", "link", "show", "lo"],
                               capture_output=True, text=True)
            if "UP" in r.stdout.split(">")[0]:
                return
            time.sleep(0.05)
        raise AssertionError("the Pod's network namespace did not come up: " + r.stdout + r.stderr)

    def make_volumes(self):
        fs_group = self.spec["securityContext"]["fsGroup"]
        for v in self.spec["volumes"]:
            ed = v.get("emptyDir")
            assert ed is not None, f"volume {v['name']} is not an emptyDir: the simulation has only those"
            path = os.path.join(self.work, "volumes", v["name"])
            os.makedirs(path)
            if ed.get("medium") == "Memory":
                size = quantity_bytes(ed["sizeLimit"])
                subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777",
                                f"pod-{v['name']}", path], check=True)
                self.mounts.append(path)
            # The kubelet's fsGroup ownership: group fsGroup, setgid, group rwx (emptyDir 0777).
            os.chown(path, 0, fs_group)
            os.chmod(path, 0o2777)
            self.volumes[v["name"]] = path

    def start_sidecars_then_apps(self):
        sidecars = [c for c in self.spec.get("initContainers", [])
                    if c.get("restartPolicy") == "Always"]
        assert sidecars, "no native sidecar in the Pod"
        for spec in sidecars:
            c = Container(self, spec, sidecar=True)
            self.containers.append(c)
            c.start()
            self.wait_startup_probe(c)
        for spec in self.spec["containers"]:
            c = Container(self, spec, sidecar=False)
            self.containers.append(c)
            c.start()

    def probe(self, container, probe):
        """The kubelet's grpc probe: grpc.health.v1 Check on the probe's port."""
        port = probe["grpc"]["port"]
        r = subprocess.run(
            ["nsenter", f"--net={self.netns}", os.path.join(self.image_bin, "shmdctl"),
             "--listen", f"127.0.0.1:{port}", "health"],
            capture_output=True, text=True, timeout=probe.get("timeoutSeconds", 1) + 10)
        return r.returncode == 0

    def wait_startup_probe(self, c):
        probe = c.spec["startupProbe"]
        period = probe.get("periodSeconds", 10)
        for _ in range(probe.get("failureThreshold", 3)):
            if self.probe(c, probe):
                log(f"{c.name}: startupProbe passed")
                return
            if c.proc.poll() is not None:
                raise AssertionError(f"{c.name} exited ({c.proc.returncode}):\n{c.output()}")
            time.sleep(period)
        raise AssertionError(f"{c.name}: startupProbe never passed:\n{c.output()}")

    def container(self, name):
        return next(c for c in self.containers if c.name == name)

    def supervise(self):
        """restartPolicy: Always: a container that exited starts again, after a back-off
        that doubles from 1 s (the kubelet's starts at 10 s: shortened for the test)."""
        now = time.monotonic()
        for c in self.containers:
            if c.proc.poll() is None:
                continue
            if c.restart_at is None:
                c.restart_at = now + min(2 ** (c.starts - 1), 16)
                log(f"{c.name} exited with {c.proc.returncode}; restarting in "
                    f"{c.restart_at - now:.0f} s")
            elif now >= c.restart_at:
                c.restart_at = None
                c.start()

    def wait_until(self, what, condition, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.supervise()
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n" + self.dump())

    def exec_as(self, uid, gid, argv):
        """An ephemeral container (kubectl debug): the image's root, the volumes, uid:gid."""
        spec = {"name": f"debug-{len(self.containers)}", "command": argv,
                "securityContext": {"runAsUser": uid, "runAsGroup": gid,
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "env": [{"name": "SHMD_LISTEN", "value": self.image_env["SHMD_LISTEN"]}],
                "volumeMounts": self.spec["containers"][0]["volumeMounts"]}
        c = Container(self, spec, sidecar=False)
        c.start()
        c.proc.wait(timeout=60)
        return c.proc.returncode, c.output().split("\n", 1)[1]

    def dump(self):
        parts = []
        for c in self.containers:
            parts.append(f"----- {c.name} ({c.starts} starts) -----\n{c.output()[-4000:]}")
        return "\n".join(parts)

    def teardown(self):
        # Apps first, the native sidecar last, as the kubelet stops a Pod.
        for c in [c for c in self.containers if not c.sidecar] + \
                 [c for c in self.containers if c.sidecar]:
            c.stop(signal.SIGTERM)
            try:
                c.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.stop(signal.SIGKILL)
                c.proc.wait(timeout=10)
        if self.netns_holder:
            os.killpg(self.netns_holder.pid, signal.SIGKILL)
            self.netns_holder.wait()
        for path in self.mounts:
            subprocess.run(["umount", "-l", path], check=False)
        if ARGS.keep:
            print(f"pod_test: kept {self.work}", file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def count(pattern, text):
    return len(re.findall(pattern, text))


RECEIVED = rf"receiver: received {MESSAGES} messages \(0 to {MESSAGES - 1}\) in order, every byte checked"
SENT = rf"sender: sent {MESSAGES} messages"


class PodTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pod = Pod(ARGS.repo, ARGS.bin_dir)
        try:
            cls.pod.make_network()
            cls.pod.make_volumes()
            cls.pod.start_sidecars_then_apps()
        except BaseException:
            print(cls.pod.dump(), file=sys.stderr)
            cls.pod.teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pod.teardown()

    def test_1_apps_move_data_end_to_end_run_after_run(self):
        pod = self.pod
        producer, consumer = pod.container("producer"), pod.container("consumer")
        self.assertNotEqual(producer.security("runAsUser"), consumer.security("runAsUser"),
                            "the manifest's apps should differ in uid for this test to mean much")
        pod.wait_until("two complete runs through the ring",
                       lambda: count(RECEIVED, consumer.output()) >= 2
                       and count(SENT, producer.output()) >= 2, timeout=120)
        for c in pod.containers:
            self.assertEqual(c.starts, 1, f"{c.name} restarted:\n{pod.dump()}")
        self.assertNotIn("named_channel:", consumer.output(), "the consumer reported an error")

    def test_2_socket_and_objects_have_the_manifests_modes(self):
        pod = self.pod
        fs_group = pod.spec["securityContext"]["fsGroup"]
        sock_dir = pod.volumes["shmd-socket"]
        st = os.stat(os.path.join(sock_dir, "shmd.sock"))
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660, "--socket-mode=0660")
        self.assertEqual(st.st_gid, fs_group, "the socket takes the volume's group (setgid)")
        shm_dir = pod.volumes["shmd-shm"]
        objects = [f for f in os.listdir(shm_dir) if f.endswith(".demo")]
        self.assertEqual(len(objects), 1, os.listdir(shm_dir))
        st = os.stat(os.path.join(shm_dir, objects[0]))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660, "named_channel send --mode 0660")
        self.assertEqual(st.st_gid, fs_group)
        self.assertEqual(st.st_uid, pod.container("shmd").security("runAsUser"),
                         "the daemon creates the files, as its own uid")

    def test_3_an_ephemeral_container_of_another_uid_reads_the_ring(self):
        rc, out = self.pod.exec_as(65534, self.pod.spec["securityContext"]["fsGroup"],
                                   ["shmdctl", "--json", "get", "rings/demo"])
        self.assertEqual(rc, 0, out)
        ring = json.loads(out[out.index("{"):])
        self.assertGreaterEqual(int(ring["usage"]["messagesRead"]), 2 * MESSAGES, ring)

    def test_4_a_killed_consumer_container_is_cleared_and_its_restart_takes_over(self):
        pod = self.pod
        producer, consumer = pod.container("producer"), pod.container("consumer")
        before = count(RECEIVED, consumer.output())
        # Kill while data flows: once the consumer has joined a run that has begun.
        pod.wait_until("a run in progress", lambda: count(SENT, producer.output()) >= 2 and
                       producer.output().rstrip().endswith("/run/shmd/shmd.sock"), timeout=60)
        init = consumer.init_pid()
        self.assertIsNotNone(init)
        log(f"SIGKILL to the consumer container's init (pid {init} here)")
        os.kill(init, signal.SIGKILL)
        consumer.proc.wait(timeout=10)
        # The supervisor restarts it; it must become the consumer again (the dead one's
        # endpoint cleared, though it lived in another PID namespace than everyone else),
        # and two complete runs must come through it.
        pod.wait_until("the restarted consumer receiving two complete runs",
                       lambda: consumer.starts >= 2 and
                       count(RECEIVED, consumer.output().split(f"--- start {consumer.starts} ---")[-1]) >= 2,
                       timeout=180)
        self.assertGreaterEqual(count(RECEIVED, consumer.output()), before + 2)
        after_restart = consumer.output().split("--- start 2 ---")[-1]
        self.assertNotIn("already has a live consumer", after_restart, pod.dump())


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--bin-dir", required=True, help="the build directory (build/)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("-v", "--verbose", action="store_true")
    ARGS, rest = parser.parse_known_args()
    if os.geteuid() != 0:
        print("pod_test: SKIPPED: needs root (namespaces, mounts, setpriv)", file=sys.stderr)
        return 77
    prog = unittest.main(argv=[sys.argv[0], "-v"] + rest, exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
