// Validates Prometheus Operator resources (JSON documents on stdin, one array) against the
// validators @kubernetes-models/prometheus-operator generates from the operator's CRD
// schemas. Prints one JSON line: [{"kind": ..., "name": ..., "error": null | "..."}].
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

const kinds = { PodMonitor };
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((doc) => {
  const Model = kinds[doc.kind];
  if (!Model) return { kind: doc.kind, name: doc.metadata?.name, error: "no validator for this kind" };
  try {
    new Model(doc).validate();
    return { kind: doc.kind, name: doc.metadata?.name, error: null };
  } catch (e) {
    return { kind: doc.kind, name: doc.metadata?.name, error: String(e.message) };
  }
});
process.stdout.write(JSON.stringify(out) + "\n");
