// Validates Prometheus Operator objects (JSON array on stdin) with the validators compiled from its
// Go types (@kubernetes-models/prometheus-operator). argv[2]: the package directory. Prints one
// line per object, "ok ..." or "INVALID ..."; exits 1 when any is invalid.
import { pathToFileURL } from "node:url";
import path from "node:path";

const pkg = process.argv[2];
const v1 = await import(pathToFileURL(path.join(pkg, "monitoring.coreos.com", "v1", "index.js")).href);
let input = "";
for await (const chunk of process.stdin) input += chunk;
let bad = 0;
for (const obj of JSON.parse(input)) {
  const Model = v1[obj.kind];
  try {
    if (!Model) throw new Error(`unknown kind ${obj.kind}`);
    new Model(obj).validate();
    console.log(`ok ${obj.kind} ${obj.metadata.name}`);
  } catch (err) {
    bad++;
    console.log(`INVALID ${obj.kind} ${obj.metadata.name}: ${err.message.replace(/\n/g, " ")}`);
  }
}
process.exit(bad ? 1 : 0);
