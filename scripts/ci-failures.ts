/**
 * Prints the failed tests of the vitest JSON reports given as arguments: file, test name and the
 * first lines of the failure. `.ci/run` calls it when a step fails, after the step times, because
 * only the end of a CI log is kept and vitest prints its failures far above it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface JsonReport {
  testResults?: {
    name: string;
    status: string;
    message?: string;
    assertionResults: { status: string; fullName: string; failureMessages?: string[] }[];
  }[];
}

for (const report of process.argv.slice(2)) {
  if (!existsSync(report)) continue;
  const { testResults = [] } = JSON.parse(readFileSync(report, 'utf8')) as JsonReport;
  for (const file of testResults) {
    const failed = file.assertionResults.filter((t) => t.status === 'failed');
    if (file.status === 'failed' && failed.length === 0) {
      console.log(`FAILED ${relative(process.cwd(), file.name)}: ${String(file.message ?? '').split('\n').slice(0, 3).join(' | ')}`);
    }
    for (const test of failed) {
      const why = (test.failureMessages ?? []).join('\n').split('\n').slice(0, 3).join(' | ');
      console.log(`FAILED ${relative(process.cwd(), file.name)} > ${test.fullName}: ${why.slice(0, 600)}`);
    }
  }
}
