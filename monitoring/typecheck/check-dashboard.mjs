// Turns monitoring/dashboard.json into what the real tools can check:
//   generated/dashboard.ts        the dashboard as a typed object literal, for tsc
//                                 (wrong types and unknown fields fail against @grafana/schema)
//   generated/panel-queries.yml   every panel's PromQL as a recording rule, for promtool
// and checks what neither tool sees: unique panel ids, grid positions inside
// 24 columns, a query and a data source on every panel.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dashboard = JSON.parse(readFileSync(join(here, '..', 'dashboard.json'), 'utf8'));
const out = join(here, 'generated');
mkdirSync(out, { recursive: true });

writeFileSync(join(out, 'dashboard.ts'),
  "import type { Dashboard } from '@grafana/schema';\n\n" +
  `export const dashboard: Dashboard = ${JSON.stringify(dashboard, null, 2)};\n`);

// Grafana's variables, replaced by values PromQL accepts.
const substitute = (expr) => expr
  .replaceAll('$__rate_interval', '5m')
  .replaceAll('$__range', '1h')
  .replace(/\$\{?[a-z_]+\}?/g, '.*');

const problems = [];
const ids = new Set();
const rules = [];
const walk = (panels) => {
  for (const p of panels) {
    if (ids.has(p.id)) problems.push(`panel id ${p.id} is used twice`);
    ids.add(p.id);
    const g = p.gridPos;
    if (!g || g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1) problems.push(`panel ${p.id} '${p.title}': bad gridPos`);
    if (p.type === 'row') {
      walk(p.panels || []);
      continue;
    }
    if (!p.datasource) problems.push(`panel ${p.id} '${p.title}': no data source`);
    if (!p.targets || p.targets.length === 0) problems.push(`panel ${p.id} '${p.title}': no query`);
    for (const t of p.targets || []) {
      if (!t.expr) problems.push(`panel ${p.id} '${p.title}' query ${t.refId}: empty expr`);
      rules.push({ record: `dashboard:panel_${p.id}_${t.refId.toLowerCase()}`, expr: substitute(t.expr || '') });
    }
  }
};
walk(dashboard.panels || []);
for (const v of dashboard.templating?.list || []) {
  if (v.type === 'query') rules.push({ record: `dashboard:variable_${v.name}`, expr: 'count(' + v.query.query.match(/label_values\((\w+)/)[1] + ')' });
}

const yaml = ['groups:', '  - name: dashboard-panel-queries', '    rules:'];
for (const r of rules) yaml.push(`      - record: ${r.record}`, `        expr: ${JSON.stringify(r.expr)}`);
writeFileSync(join(out, 'panel-queries.yml'), yaml.join('\n') + '\n');

if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`dashboard: ${ids.size} panels, ${rules.length} queries written to generated/`);
