// Writes generated/<board>.ts: each dashboard JSON as a literal that must satisfy Grafana's
// published Dashboard type (@grafana/schema veneer), checked by `tsc --noEmit`.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const boards = process.argv[2] ?? '../dashboards';
rmSync('generated', { recursive: true, force: true });
mkdirSync('generated');
for (const file of readdirSync(boards).filter((f) => f.endsWith('.json')).sort()) {
  const json = readFileSync(join(boards, file), 'utf8');
  JSON.parse(json); // fail early on invalid JSON
  const name = basename(file, '.json');
  writeFileSync(
    join('generated', `${name}.ts`),
    "import type { Dashboard } from '@grafana/schema';\n" +
      "import type { Loose } from '../loose';\n\n" +
      `export const dashboard = ${json.trim()} satisfies Loose<Dashboard>;\n`,
  );
}
