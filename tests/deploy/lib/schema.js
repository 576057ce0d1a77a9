// Validation of rendered objects against the Kubernetes schemas of kubernetes-models
// (and @kubernetes-models/prometheus-operator for monitoring.coreos.com), plus a check
// for unknown fields, which those schemas let through (they do not set
// additionalProperties: false, so `runAsNonroot: true` or `hostipc: true` validate).
//
// The unknown-field check asks the same compiled schemas which fields they know, by
// probing: the object as rendered is valid; for each field, the field's value is
// replaced in turn by values of every JSON type (a number, a string, a boolean, an
// object, an array). A field the schema knows has a type, so at least one of those
// makes validation fail; a field the schema does not know accepts them all. Known
// fields that hold objects or arrays are walked the same way, down to the leaves; maps
// (labels, annotations, ConfigMap data) are typed by their values, so their keys count
// as known. So the check follows the schema wherever it goes: no list of kinds or
// fields of our own to keep up to date.

const PROBES = [1.5, "\u0000probe", true, { "\u0000probe": 1 }, [1.5]];

// The model class for an apiVersion and kind, or undefined.
export async function modelClass(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  let specifier;
  if (group === "") specifier = `kubernetes-models/${version}`;
  else if (group === "monitoring.coreos.com") {
    specifier = `@kubernetes-models/prometheus-operator/${group}/${version}`;
  } else specifier = `kubernetes-models/${group}/${version}`;
  let mod;
  try {
    mod = await import(specifier);
  } catch {
    return undefined;
  }
  const Model = mod[kind];
  return typeof Model === "function" ? Model : undefined;
}

// Validates data with Model; returns the list of errors ([] when valid).
export function schemaErrors(Model, data) {
  try {
    new Model(data).validate();
    return [];
  } catch (e) {
    if (Array.isArray(e.errors) && e.errors.length) {
      return e.errors.map((err) => `${err.instancePath || "/"} ${err.message || err.keyword}`);
    }
    return [String(e.message || e)];
  }
}

function pointer(path) {
  return "/" + path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/");
}

function setAt(root, path, value) {
  let node = root;
  for (let i = 0; i < path.length - 1; i++) node = node[path[i]];
  node[path[path.length - 1]] = value;
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// Returns the JSON pointers of every field of data that Model's schema does not know.
// data must be valid (schemaErrors(Model, data) is empty): a probe's failure is then
// caused by the probe alone.
export function unknownFields(Model, data) {
  const unknown = [];
  const known = (path) =>
    PROBES.some((probe) => {
      const copy = structuredClone(data);
      setAt(copy, path, probe);
      return schemaErrors(Model, copy).length > 0;
    });
  const walk = (value, path) => {
    if (Array.isArray(value)) {
      value.forEach((item, i) => walk(item, [...path, i]));
      return;
    }
    if (!isPlainObject(value)) return;
    for (const key of Object.keys(value)) {
      const p = [...path, key];
      if (!known(p)) {
        unknown.push(pointer(p));
        continue;
      }
      walk(value[key], p);
    }
  };
  walk(data, []);
  return unknown;
}
