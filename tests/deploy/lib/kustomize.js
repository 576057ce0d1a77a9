// Renders deploy/k8s overlays with `kubectl kustomize` and parses the documents.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const K8S_DIR = join(REPO_ROOT, "deploy/k8s");
export const OVERLAYS_DIR = join(K8S_DIR, "overlays");

// The kubectl to use: $KUBECTL, else the first kubectl on $PATH. Returns
// { path, version } or { error } saying what is missing and how to fix it.
export function findKubectl() {
  let path = process.env.KUBECTL;
  if (path) {
    if (!existsSync(path)) {
      return { error: `KUBECTL=${path} does not exist` };
    }
  } else {
    for (const dir of (process.env.PATH || "").split(delimiter)) {
      if (!dir) continue;
      const candidate = join(dir, "kubectl");
      try {
        if (statSync(candidate).isFile()) {
          path = candidate;
          break;
        }
      } catch {
        // not in this directory
      }
    }
  }
  if (!path) {
    return {
      error:
        "kubectl was not found on PATH (and KUBECTL is not set). These tests render the " +
        "manifests with `kubectl kustomize` (kubectl 1.27 or newer, offline: no cluster needed). " +
        "Install kubectl, or set KUBECTL=/path/to/kubectl, and run again.",
    };
  }
  const v = spawnSync(path, ["version", "--client", "--output=json"], { encoding: "utf8" });
  if (v.error || v.status !== 0) {
    return { error: `${path} version --client failed: ${v.error?.message || v.stderr}` };
  }
  let version;
  try {
    version = JSON.parse(v.stdout);
  } catch {
    return { error: `${path} version --client printed no JSON: ${v.stdout}` };
  }
  return { path, version };
}

// Every directory under deploy/k8s/overlays.
export function overlayNames() {
  return readdirSync(OVERLAYS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

// Runs `kubectl kustomize [flags] <dir>`; returns { status, stdout, stderr }.
export function kustomize(kubectl, dir, flags = []) {
  const r = spawnSync(kubectl, ["kustomize", ...flags, dir], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Renders an overlay and returns its objects; throws with kubectl's message on failure.
export function render(kubectl, overlay, flags = []) {
  const dir = join(OVERLAYS_DIR, overlay);
  const r = kustomize(kubectl, dir, flags);
  if (r.status !== 0) {
    throw new Error(
      `kubectl kustomize ${[...flags, dir].join(" ")} exited ${r.status}:\n${r.stderr}`,
    );
  }
  const docs = [];
  yaml.loadAll(r.stdout, (doc) => {
    if (doc !== null && doc !== undefined) docs.push(doc);
  });
  return docs;
}
