// Validates rendered chart output: node validate.mjs rendered/NAME.yaml ...
//  - every object is constructed with its kubernetes-models class (KEDA and
//    prometheus-operator included) and .validate()d: wrong types, missing
//    required fields, bad enums;
//  - writes generated/NAME.ts, the objects as typed literals, for tsc to
//    catch unknown fields;
//  - writes generated/NAME-rules.yml (each PrometheusRule's groups, for
//    promtool) and generated/NAME-fleet.yaml (the fleet config, for
//    `agentfleet validate`);
//  - checks what a pod needs here: probes, non-root, resources.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'generated');
mkdirSync(out, { recursive: true });

const modules = {
  'v1': 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'batch/v1': 'kubernetes-models/batch/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
  'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
  'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
};

const problems = [];
for (const file of process.argv.slice(2)) {
  const name = basename(file, '.yaml');
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS()).filter((o) => o);
  const imports = new Set();
  const decls = [];
  let kinds = {};
  for (const [i, obj] of docs.entries()) {
    const where = `${name}: ${obj.kind} ${obj.metadata?.name}`;
    const path = modules[obj.apiVersion];
    if (!path) {
      problems.push(`${where}: no model for apiVersion ${obj.apiVersion}`);
      continue;
    }
    const mod = await import(`${path}/${obj.kind}`);
    const Model = mod[obj.kind];
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
    kinds[obj.kind] = (kinds[obj.kind] || 0) + 1;
    imports.add(`import type { I${obj.kind} } from '${path}/${obj.kind}';`);
    decls.push(`export const o${i}: I${obj.kind} = ${JSON.stringify(obj, null, 2)};`);
    if (obj.kind === 'PrometheusRule') {
      writeFileSync(join(out, `${name}-rules.yml`), JSON.stringify({ groups: obj.spec.groups }, null, 2));
    }
    if (obj.kind === 'ConfigMap' && obj.data?.['fleet.yaml'] && !obj.metadata.annotations?.['helm.sh/hook']) {
      writeFileSync(join(out, `${name}-fleet.yaml`), obj.data['fleet.yaml']);
    }
    const pod = obj.spec?.template?.spec;
    if (pod && obj.kind !== 'Job') {
      if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${where}: pods may run as root`);
      for (const c of pod.containers) {
        if (!c.livenessProbe || !c.readinessProbe) problems.push(`${where}: container ${c.name} lacks probes`);
        if (!c.resources?.requests) problems.push(`${where}: container ${c.name} has no resource requests`);
        if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${where}: writable root filesystem`);
      }
    }
  }
  writeFileSync(join(out, `${name}.ts`), [...imports].join('\n') + '\n\n' + decls.join('\n\n') + '\n');
  console.log(`${name}: ${docs.length} objects validated (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')})`);
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
