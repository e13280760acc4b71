// `npm publish` (prepublishOnly) refuses a package that its users couldn't trace: npm shows
// `repository` and `homepage` on the package page, and the README's links to the repository's
// sources and tests are named as code because only those two fields can make them reachable.
// The project has no public home yet; fill both in on the first publish.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const missing = ['repository', 'homepage'].filter((field) => !pkg[field]);
if (missing.length > 0) {
  console.error(`vault-db: set ${missing.join(' and ')} in package.json before publishing (the project's public URL).`);
  process.exit(1);
}
