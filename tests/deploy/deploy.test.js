// Offline tests of shmd's Kubernetes manifests (deploy/k8s).
//
//   cd tests/deploy && npm ci && node --test
//
// For every overlay under deploy/k8s/overlays: `kubectl kustomize` renders it (no cluster
// needed); every object validates against the Kubernetes schemas of kubernetes-models and
// has no field those schemas do not know; and the rendered Pods are what the deployment
// promises: shmd as a native sidecar (initContainers + restartPolicy: Always) where it
// should be, probes on the daemon's health port, the restricted Pod Security Standard in
// every container, no host namespaces or hostPath (node mode excepted, and flagged),
// socket mode 0660 and an fsGroup, resources, and a shm volume that fits the quota.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

import {
  containersOf,
  describeObj,
  envValue,
  flagValue,
  hostPort,
  podTemplates,
  quantityBytes,
  restrictedViolations,
  shmdBytes,
} from "./lib/checks.js";
import { findKubectl, kustomize, OVERLAYS_DIR, overlayNames, render, REPO_ROOT } from "./lib/kustomize.js";
import { modelClass, schemaErrors, unknownFields } from "./lib/schema.js";

const NAMESPACE = "shmd-example";
const SOCKET_DIR = "/run/shmd";
const SHM_DIR = "/shm";
const FLAG = "shmd/pod-security"; // annotation every workload outside "restricted" carries
const NODE_HOST_PATHS = new Set(["/run/shmd", "/dev/shm/shmd"]);
// The only deviations from "restricted" that node mode may have, in flagged workloads.
const NODE_EXCEPTIONS = {
  pod: new Set(["volume:hostPath"]),
  containers: { "prepare-host-dirs": new Set(["runAsNonRoot", "runAsUser", "capabilities.add"]) },
};

// What each overlay is. A new overlay directory without an entry here fails the suite.
const OVERLAYS = {
  native: { flags: [], mode: "native" },
  classic: { flags: [], mode: "classic" },
  monitoring: { flags: [], mode: "native", monitoring: true },
  dashboard: { flags: [], mode: "native", monitoring: true, dashboard: true },
  node: { flags: [], mode: "node" },
};

const kubectl = findKubectl();

if (kubectl.error) {
  test("kubectl is available to render the manifests", () => {
    assert.fail(kubectl.error);
  });
} else {
  test("every overlay directory is tested, and every tested overlay exists", (t) => {
    const v = kubectl.version;
    t.diagnostic(`kubectl ${v.clientVersion?.gitVersion} (kustomize ${v.kustomizeVersion}) at ${kubectl.path}`);
    assert.deepEqual(overlayNames(), Object.keys(OVERLAYS).sort());
  });

  test("the unknown-field check catches misspelt fields that kubernetes-models accepts", async () => {
    const docs = render(kubectl.path, "native");
    const deployment = structuredClone(docs.find((d) => d.kind === "Deployment"));
    const Deployment = await modelClass("apps/v1", "Deployment");
    assert.deepEqual(unknownFields(Deployment, deployment), []);
    const spec = deployment.spec.template.spec;
    spec.hostipc = true;
    spec.initContainers[0].securityContext.runAsNonroot = true;
    spec.initContainers[0].startupProbe.grpc.prot = 8081;
    spec.volumes[0].emptyDir.sizelimit = "1Gi";
    assert.deepEqual(schemaErrors(Deployment, deployment), [], "kubernetes-models alone lets them through");
    assert.deepEqual(unknownFields(Deployment, deployment).sort(), [
      "/spec/template/spec/hostipc",
      "/spec/template/spec/initContainers/0/securityContext/runAsNonroot",
      "/spec/template/spec/initContainers/0/startupProbe/grpc/prot",
      "/spec/template/spec/volumes/0/emptyDir/sizelimit",
    ]);
    // And a wrong type is still the schema's business.
    spec.initContainers[0].startupProbe.grpc.port = "8081";
    assert.notDeepEqual(schemaErrors(Deployment, deployment), []);
  });

  for (const [name, expect] of Object.entries(OVERLAYS)) {
    describe(`overlay ${name}`, () => {
      let docs;
      let renderError;
      try {
        docs = render(kubectl.path, name, expect.flags);
      } catch (e) {
        renderError = e;
      }
      const flags = expect.flags.length ? `${expect.flags.join(" ")} ` : "";
      test(`renders: kubectl kustomize ${flags}deploy/k8s/overlays/${name}`, () => {
        if (renderError) assert.fail(renderError.message);
        assert.ok(docs.length > 0, "no objects rendered");
      });
      if (renderError) return;

      const pods = podTemplates(docs);
      const daemonPods = pods.filter(({ spec }) => containersOf(spec).some(({ c }) => c.name === "shmd"));
      const flagged = (obj) => String(obj.metadata?.annotations?.[FLAG] || "").startsWith("privileged");

      test("every object validates against the Kubernetes schemas (kubernetes-models)", async () => {
        for (const obj of docs) {
          const Model = await modelClass(obj.apiVersion, obj.kind);
          assert.ok(Model, `no kubernetes-models class for ${obj.apiVersion} ${obj.kind}`);
          assert.deepEqual(schemaErrors(Model, obj), [], `${describeObj(obj)} does not validate`);
        }
      });

      test("no object has a field its schema does not know", async () => {
        for (const obj of docs) {
          const Model = await modelClass(obj.apiVersion, obj.kind);
          assert.deepEqual(unknownFields(Model, obj), [], `unknown fields in ${describeObj(obj)}`);
        }
      });

      test(`every namespaced object is in ${NAMESPACE}, whose Pod Security level fits the overlay`, () => {
        for (const obj of docs) {
          if (obj.kind === "Namespace") continue;
          assert.equal(obj.metadata.namespace, NAMESPACE, `${describeObj(obj)} namespace`);
        }
        const ns = docs.find((d) => d.kind === "Namespace");
        assert.ok(ns, "the overlay renders its Namespace");
        const labels = ns.metadata.labels;
        if (expect.mode === "node") {
          assert.equal(labels["pod-security.kubernetes.io/enforce"], "privileged");
          assert.ok(flagged(ns), `the Namespace carries ${FLAG}: privileged...`);
        } else {
          assert.equal(labels["pod-security.kubernetes.io/enforce"], "restricted");
          assert.ok(!flagged(ns));
        }
        assert.equal(labels["pod-security.kubernetes.io/warn"], "restricted");
        assert.equal(labels["pod-security.kubernetes.io/audit"], "restricted");
      });

      test(`the shmd daemon runs as ${expect.mode === "node" ? "a DaemonSet" : `a ${expect.mode} sidecar`}`, () => {
        assert.equal(daemonPods.length, 1, "exactly one workload runs shmd");
        const [{ obj, spec }] = daemonPods;
        const init = (spec.initContainers || []).find((c) => c.name === "shmd");
        const main = (spec.containers || []).find((c) => c.name === "shmd");
        if (expect.mode === "native") {
          assert.equal(obj.kind, "Deployment");
          assert.ok(init, "shmd is in initContainers");
          assert.equal(init.restartPolicy, "Always", "native sidecar: restartPolicy Always");
          assert.equal(main, undefined, "shmd is not also a regular container");
          assert.equal(spec.initContainers[0].name, "shmd", "shmd starts before any other init container");
          assert.ok(spec.containers.length >= 2, "two app containers beside it");
        } else if (expect.mode === "classic") {
          assert.equal(obj.kind, "Deployment");
          assert.equal(init, undefined, "no shmd init container");
          assert.ok(main, "shmd is a regular container");
          assert.equal(main.restartPolicy, undefined, "no container-level restartPolicy");
          assert.equal(spec.containers[0].name, "shmd", "shmd comes first");
          for (const { c } of containersOf(spec)) {
            assert.equal(c.restartPolicy, undefined, `${c.name}: restartPolicy needs 1.29+`);
          }
          // Without native sidecars, the apps must wait for the daemon themselves.
          for (const c of spec.containers.filter((x) => x.name !== "shmd")) {
            assert.match((c.args || []).join("\n"), /shmdctl health/, `${c.name} waits for the daemon`);
          }
        } else {
          assert.equal(obj.kind, "DaemonSet");
          assert.ok(main, "shmd is the DaemonSet's container");
          const apps = pods.filter((p) => p !== daemonPods[0]);
          assert.ok(apps.length >= 1, "an app workload uses the node's daemon");
          for (const app of apps) {
            assert.ok(!containersOf(app.spec).some(({ c }) => c.name === "shmd"), "no sidecar in node mode");
          }
        }
      });

      test("the probes use the grpc health port that --health-address opens; metrics on 0.0.0.0:9478", () => {
        for (const { spec } of daemonPods) {
          const shmd = containersOf(spec).find(({ c }) => c.name === "shmd").c;
          const health = hostPort(flagValue(shmd, "health-address"));
          assert.ok(health, "shmd has --health-address HOST:PORT");
          assert.equal(health.host, "0.0.0.0", "the kubelet probes the Pod's IP");
          for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
            assert.ok(shmd[probe], `${probe} present`);
            assert.ok(shmd[probe].grpc, `${probe} is a grpc probe`);
            assert.equal(shmd[probe].grpc.port, health.port, `${probe} port = --health-address port`);
            assert.ok(!shmd[probe].grpc.service, `${probe} asks for the server's overall health`);
          }
          const ports = shmd.ports || [];
          assert.ok(ports.some((p) => p.containerPort === health.port && p.name === "grpc-health"));
          const metrics = hostPort(flagValue(shmd, "metrics-address"));
          assert.deepEqual(metrics, { host: "0.0.0.0", port: 9478 });
          assert.ok(ports.some((p) => p.containerPort === 9478 && p.name === "metrics"));
        }
        // Nothing else probes anything but the daemon's port.
        for (const { spec } of pods) {
          for (const { c } of containersOf(spec)) {
            if (c.name === "shmd") continue;
            for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
              assert.equal(c[probe], undefined, `${c.name} has no ${probe}`);
            }
          }
        }
      });

      test("restricted Pod Security settings hold in every pod and container; no host namespaces", () => {
        for (const { obj, spec, template } of pods) {
          const pod = spec.securityContext || {};
          assert.equal(pod.runAsNonRoot, true, `${describeObj(obj)}: pod runAsNonRoot`);
          assert.equal(pod.seccompProfile?.type, "RuntimeDefault", `${describeObj(obj)}: pod seccomp`);
          assert.ok(pod.runAsUser > 0, `${describeObj(obj)}: pod runAsUser`);
          for (const f of ["hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"]) {
            assert.notEqual(spec[f], true, `${describeObj(obj)}: ${f}`);
          }
          let violations = restrictedViolations(spec, template?.metadata);
          if (expect.mode === "node" && flagged(obj)) {
            violations = violations.filter(({ container, rule }) =>
              container === undefined
                ? !NODE_EXCEPTIONS.pod.has(rule)
                : !NODE_EXCEPTIONS.containers[container]?.has(rule),
            );
          } else {
            assert.ok(!flagged(obj), `${describeObj(obj)} is flagged ${FLAG} outside node mode`);
          }
          assert.deepEqual(
            violations.map(({ container, detail }) => `${container ?? "pod"}: ${detail}`),
            [],
            `${describeObj(obj)} breaks "restricted"`,
          );
          for (const { c } of containersOf(spec)) {
            assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${c.name}`);
            assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], `${c.name}`);
            assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}`);
            assert.equal(c.securityContext?.seccompProfile?.type, "RuntimeDefault", `${c.name}`);
          }
        }
      });

      test(
        expect.mode === "node"
          ? "hostPath only in flagged workloads, only the node's /run/shmd and /dev/shm/shmd"
          : "no hostPath volume anywhere",
        () => {
          for (const { obj, spec } of pods) {
            const hostPaths = (spec.volumes || []).filter((v) => v.hostPath);
            if (expect.mode !== "node") {
              assert.deepEqual(hostPaths, [], `${describeObj(obj)} mounts hostPath`);
              continue;
            }
            if (hostPaths.length) assert.ok(flagged(obj), `${describeObj(obj)} uses hostPath unflagged`);
            for (const v of hostPaths) {
              assert.ok(NODE_HOST_PATHS.has(v.hostPath.path), `hostPath ${v.hostPath.path}`);
            }
          }
        },
      );

      test("socket mode 0660, fsGroup, and every container sees the socket and the objects at the same paths", () => {
        const [{ spec: dspec }] = daemonPods;
        const shmd = containersOf(dspec).find(({ c }) => c.name === "shmd").c;
        assert.equal(flagValue(shmd, "socket-mode"), "0660");
        const listen = flagValue(shmd, "listen");
        assert.equal(listen, `unix://${SOCKET_DIR}/shmd.sock`);
        assert.equal(flagValue(shmd, "shm-dir"), SHM_DIR);
        for (const { obj, spec } of pods) {
          const pod = spec.securityContext || {};
          const volumes = Object.fromEntries((spec.volumes || []).map((v) => [v.name, v]));
          if (expect.mode !== "node") {
            assert.ok(pod.fsGroup > 0, `${describeObj(obj)}: fsGroup shares the volumes`);
            assert.equal(volumes["shmd-shm"]?.emptyDir?.medium, "Memory", "objects on a tmpfs emptyDir");
            assert.ok(volumes["shmd-shm"].emptyDir.sizeLimit, "the shm emptyDir has a sizeLimit");
            assert.ok(volumes["shmd-socket"]?.emptyDir, "the socket on an emptyDir");
          }
          for (const { c } of containersOf(spec)) {
            if (c.name === "prepare-host-dirs") continue;
            const mounts = Object.fromEntries((c.volumeMounts || []).map((m) => [m.mountPath, m.name]));
            assert.equal(mounts[SOCKET_DIR], "shmd-socket", `${c.name} mounts the socket dir`);
            assert.equal(mounts[SHM_DIR], "shmd-shm", `${c.name} mounts the shm dir`);
            // Every app shares the daemon's group: fsGroup (socket, kernel check) and
            // the primary gid (shmd's own mode checks).
            const gid = c.securityContext?.runAsGroup ?? pod.runAsGroup;
            assert.equal(gid, 65532, `${c.name} runs with gid 65532`);
            if (c.name !== "shmd") {
              assert.equal(envValue(c, "SHMD_LISTEN"), listen, `${c.name} finds the daemon`);
              assert.equal(envValue(c, "SHMD_SHM_DIR"), SHM_DIR, `${c.name} knows the shm dir`);
            }
          }
        }
      });

      test("resources are set; the daemon's memory limit and the shm volume cover the quota", () => {
        for (const { obj, spec } of pods) {
          for (const { c } of containersOf(spec)) {
            for (const kind of ["requests", "limits"]) {
              for (const r of ["cpu", "memory"]) {
                assert.ok(c.resources?.[kind]?.[r], `${describeObj(obj)} ${c.name}: ${kind}.${r}`);
              }
            }
          }
        }
        for (const { spec } of daemonPods) {
          const shmd = containersOf(spec).find(({ c }) => c.name === "shmd").c;
          const quota = shmdBytes(flagValue(shmd, "quota-bytes"));
          assert.ok(quota > 0, "a quota is set");
          const limit = quantityBytes(shmd.resources.limits.memory);
          // shmd reserves (fallocate) every object's pages, so they are charged to it.
          assert.ok(limit >= quota + 64 * 2 ** 20, "shmd memory limit >= quota + 64Mi for the daemon");
          assert.equal(shmd.resources.requests.memory, shmd.resources.limits.memory, "request = limit");
          const shm = (spec.volumes || []).find((v) => v.name === "shmd-shm");
          if (shm.emptyDir) {
            assert.ok(quantityBytes(shm.emptyDir.sizeLimit) >= quota, "sizeLimit >= --quota-bytes");
          }
        }
      });

      test("every container runs the shmd image by tag", () => {
        for (const { spec } of pods) {
          for (const { c } of containersOf(spec)) {
            assert.match(c.image, /^(.+\/)?shmd:[\w][\w.-]*$/, `${c.name} image`);
            assert.ok(!c.image.endsWith(":latest"), `${c.name}: no :latest`);
            assert.equal(c.imagePullPolicy, "IfNotPresent");
          }
        }
      });

      if (expect.monitoring) {
        test("monitoring: a PodMonitor and prometheus.io annotations select the daemon's metrics port", () => {
          const monitors = docs.filter((d) => d.kind === "PodMonitor");
          assert.equal(monitors.length, 1);
          const [pm] = monitors;
          for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) {
            for (const { labels } of daemonPods) assert.equal(labels[k], v, `the daemon's Pods match ${k}`);
          }
          const selected = pods.filter(({ labels }) =>
            Object.entries(pm.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
          );
          assert.deepEqual(selected, daemonPods, "only Pods that run shmd are selected");
          const [ep] = pm.spec.podMetricsEndpoints;
          assert.equal(ep.port, "metrics");
          assert.equal(ep.path, "/metrics");
          assert.ok(
            (ep.relabelings || []).some((r) => r.targetLabel === "job" && r.replacement === "shmd"),
            'job="shmd", as the alert rules expect',
          );
          for (const { template } of daemonPods) {
            const a = template.metadata.annotations || {};
            assert.equal(a["prometheus.io/scrape"], "true");
            assert.equal(a["prometheus.io/port"], "9478");
            assert.equal(a["prometheus.io/path"], "/metrics");
          }
        });
      } else {
        test("no PodMonitor and no scrape annotations without the monitoring component", () => {
          assert.equal(docs.filter((d) => d.kind === "PodMonitor").length, 0);
          for (const { template } of pods) {
            assert.equal(template?.metadata?.annotations?.["prometheus.io/scrape"], undefined);
          }
        });
      }

      if (expect.dashboard) {
        test('dashboard: deploy/grafana/shmd.json as a ConfigMap labelled grafana_dashboard: "1"', () => {
          const cms = docs.filter((d) => d.kind === "ConfigMap" && d.metadata.labels?.grafana_dashboard === "1");
          assert.equal(cms.length, 1);
          const [cm] = cms;
          assert.equal(cm.metadata.name, "shmd-grafana-dashboard", "a stable name, no hash suffix");
          const file = readFileSync(join(REPO_ROOT, "deploy/grafana/shmd.json"), "utf8");
          assert.equal(cm.data["shmd.json"], file, "the ConfigMap holds the file as it is");
          assert.doesNotThrow(() => JSON.parse(cm.data["shmd.json"]), "the dashboard is JSON");
        });

      }
    });
  }
}
