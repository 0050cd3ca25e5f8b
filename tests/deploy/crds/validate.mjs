// Validates prometheus-operator custom resources against the operator's schemas, as
// published in @kubernetes-models/prometheus-operator (validators generated from them).
// Reads a JSON list of manifests on stdin; prints one JSON line per manifest,
// {"kind", "name", "error"} with error null when valid; exits 1 if any is invalid.
import { readFileSync } from "node:fs";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const manifests = JSON.parse(readFileSync(0, "utf8"));
let failed = false;
for (const manifest of manifests) {
  const Model = manifest.apiVersion === "monitoring.coreos.com/v1" ? v1[manifest.kind] : undefined;
  let error = null;
  if (Model === undefined) {
    error = `no schema for ${manifest.apiVersion} ${manifest.kind}`;
  } else {
    try {
      new Model(manifest).validate();
    } catch (exc) {
      error = exc.message;
    }
  }
  failed ||= error !== null;
  console.log(JSON.stringify({ kind: manifest.kind, name: manifest.metadata?.name, error }));
}
process.exit(failed ? 1 : 0);
