// Helpers that read rendered Kubernetes objects: pod templates, containers, flags,
// quantities, and the Pod Security Standard "restricted" rules.

const WORKLOAD_KINDS = new Set([
  "Deployment",
  "DaemonSet",
  "StatefulSet",
  "ReplicaSet",
  "Job",
  "ReplicationController",
]);

// [{ obj, spec, labels }] for every pod template (and bare Pod) among docs.
export function podTemplates(docs) {
  const out = [];
  for (const obj of docs) {
    if (obj.kind === "Pod") {
      out.push({ obj, spec: obj.spec, labels: obj.metadata?.labels || {} });
    } else if (WORKLOAD_KINDS.has(obj.kind)) {
      const t = obj.spec.template;
      out.push({ obj, spec: t.spec, labels: t.metadata?.labels || {}, template: t });
    } else if (obj.kind === "CronJob") {
      const t = obj.spec.jobTemplate.spec.template;
      out.push({ obj, spec: t.spec, labels: t.metadata?.labels || {}, template: t });
    }
  }
  return out;
}

// Every container of a pod spec, with where it sits.
export function containersOf(spec) {
  return [
    ...(spec.initContainers || []).map((c) => ({ c, where: "initContainers" })),
    ...(spec.containers || []).map((c) => ({ c, where: "containers" })),
    ...(spec.ephemeralContainers || []).map((c) => ({ c, where: "ephemeralContainers" })),
  ];
}

export function describeObj(obj) {
  return `${obj.kind}/${obj.metadata?.name}`;
}

// The value of --name=value or --name value in a container's command and args.
export function flagValue(container, name) {
  const argv = [...(container.command || []), ...(container.args || [])];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1];
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3);
  }
  return undefined;
}

export function envValue(container, name) {
  return (container.env || []).find((e) => e.name === name)?.value;
}

// "0.0.0.0:8081" -> { host: "0.0.0.0", port: 8081 }
export function hostPort(address) {
  const m = /^(.*):(\d+)$/.exec(address || "");
  if (!m) return undefined;
  return { host: m[1], port: Number(m[2]) };
}

// Kubernetes quantities of memory: 320Mi, 1Gi, 1G, 500M, 1024 -> bytes.
export function quantityBytes(q) {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) throw new Error(`cannot parse quantity ${q}`);
  const mult = {
    undefined: 1,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  }[m[2]];
  return Number(m[1]) * mult;
}

// shmd's byte sizes (flags): 240MiB, 1GiB, 64KiB, 4096 -> bytes.
export function shmdBytes(s) {
  const m = /^(\d+)(B|KiB|MiB|GiB|TiB)?$/.exec(String(s));
  if (!m) throw new Error(`cannot parse shmd size ${s}`);
  const mult = { undefined: 1, B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 }[
    m[2]
  ];
  return Number(m[1]) * mult;
}

// The "restricted" Pod Security Standard (Kubernetes 1.32), plus this project's own
// rules (readOnlyRootFilesystem, no shareProcessNamespace). Returns a list of
// { container, rule, detail } (container undefined for pod-level rules).
const RESTRICTED_VOLUME_TYPES = new Set([
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
]);
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);
const SELINUX_TYPES = new Set(["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]);

export function restrictedViolations(spec, templateMeta = {}) {
  const v = [];
  const add = (container, rule, detail) => v.push({ container, rule, detail });
  const pod = spec.securityContext || {};

  for (const f of ["hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"]) {
    if (spec[f] === true) add(undefined, f, `${f}: true`);
  }
  for (const vol of spec.volumes || []) {
    const type = Object.keys(vol).find((k) => k !== "name");
    if (!RESTRICTED_VOLUME_TYPES.has(type)) {
      add(undefined, `volume:${type}`, `volume ${vol.name} is ${type}${type === "hostPath" ? ` ${vol.hostPath.path}` : ""}`);
    }
  }
  for (const s of pod.sysctls || []) {
    if (!SAFE_SYSCTLS.has(s.name)) add(undefined, "sysctls", `unsafe sysctl ${s.name}`);
  }
  if (pod.seLinuxOptions) {
    if (!SELINUX_TYPES.has(pod.seLinuxOptions.type || "")) add(undefined, "seLinux", "pod seLinux type");
    if (pod.seLinuxOptions.user || pod.seLinuxOptions.role) add(undefined, "seLinux", "pod seLinux user/role");
  }
  if (pod.windowsOptions?.hostProcess) add(undefined, "hostProcess", "pod windowsOptions.hostProcess");
  if (pod.appArmorProfile?.type === "Unconfined") add(undefined, "appArmor", "pod appArmorProfile Unconfined");
  if (pod.runAsUser === 0) add(undefined, "runAsUser", "pod runAsUser 0");
  for (const [k, val] of Object.entries(templateMeta.annotations || {})) {
    if (k.startsWith("container.apparmor.security.beta.kubernetes.io/") && val === "unconfined") {
      add(undefined, "appArmor", `${k}: unconfined`);
    }
  }
  const podSeccomp = pod.seccompProfile?.type;
  if (podSeccomp === "Unconfined") add(undefined, "seccomp", "pod seccompProfile Unconfined");

  for (const { c } of containersOf(spec)) {
    const sc = c.securityContext || {};
    const name = c.name;
    if (sc.privileged === true) add(name, "privileged", "privileged: true");
    if (sc.allowPrivilegeEscalation !== false) {
      add(name, "allowPrivilegeEscalation", "allowPrivilegeEscalation is not false");
    }
    const runAsNonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
    if (runAsNonRoot !== true) add(name, "runAsNonRoot", "runAsNonRoot is not true");
    const runAsUser = sc.runAsUser ?? pod.runAsUser;
    if (runAsUser === 0) add(name, "runAsUser", "runAsUser 0");
    const seccomp = sc.seccompProfile?.type ?? podSeccomp;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") {
      add(name, "seccomp", `seccompProfile ${seccomp ?? "unset"}`);
    }
    const drop = sc.capabilities?.drop || [];
    if (!drop.includes("ALL")) add(name, "capabilities.drop", "capabilities.drop lacks ALL");
    const extra = (sc.capabilities?.add || []).filter((cap) => cap !== "NET_BIND_SERVICE");
    if (extra.length) add(name, "capabilities.add", `capabilities.add ${extra.join(",")}`);
    if (sc.procMount && sc.procMount !== "Default") add(name, "procMount", `procMount ${sc.procMount}`);
    if (sc.windowsOptions?.hostProcess) add(name, "hostProcess", "windowsOptions.hostProcess");
    if (sc.appArmorProfile?.type === "Unconfined") add(name, "appArmor", "appArmorProfile Unconfined");
    if (sc.seLinuxOptions) {
      if (!SELINUX_TYPES.has(sc.seLinuxOptions.type || "")) add(name, "seLinux", "seLinux type");
      if (sc.seLinuxOptions.user || sc.seLinuxOptions.role) add(name, "seLinux", "seLinux user/role");
    }
    for (const p of c.ports || []) {
      if (p.hostPort) add(name, "hostPort", `hostPort ${p.hostPort}`);
    }
    // This project's rule, beyond the standard.
    if (sc.readOnlyRootFilesystem !== true) {
      add(name, "readOnlyRootFilesystem", "readOnlyRootFilesystem is not true");
    }
  }
  return v;
}
