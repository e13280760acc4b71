/**
 * Prints what failed in the test legs whose output logs are given as arguments (`<leg>.log`, with
 * vitest's JSON report beside it as `<leg>.json`): each failed test with the first lines of its
 * failure, and an error that failed the run outside any test (an unhandled rejection, a worker
 * that died), which the JSON report doesn't hold. `.ci/run` calls it when a step fails, after the
 * step times, because only the end of a CI log is kept and vitest prints its failures far above it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { stripVTControlCharacters } from 'node:util';

interface JsonReport {
  testResults?: {
    name: string;
    status: string;
    message?: string;
    assertionResults: { status: string; fullName: string; failureMessages?: string[] }[];
  }[];
}

/** Vitest's banner above the errors that failed a run outside any test. */
const UNHANDLED = /Unhandled (Errors?|Rejection)|Vitest caught \d+ unhandled error/;

for (const log of process.argv.slice(2)) {
  const report = log.replace(/\.log$/, '.json');
  const failedTests = existsSync(report) ? printFailedTests(report) : 0;
  const lines = existsSync(log) ? stripVTControlCharacters(readFileSync(log, 'utf8')).split('\n') : [];
  const unhandled = lines.findIndex((line) => UNHANDLED.test(line));
  if (unhandled >= 0) {
    console.log(`FAILED ${relative(process.cwd(), log)} outside any test:\n${lines.slice(unhandled, unhandled + 25).join('\n')}`);
  } else if (!existsSync(report) && lines.length > 0) {
    // No report: the run died before vitest could write it (or it is the step that just failed).
    console.log(`FAILED ${relative(process.cwd(), log)} without a report; its last lines:\n${lines.slice(-25).join('\n')}`);
  } else if (failedTests === 0 && lines.some((line) => /Test Files .*failed/.test(line))) {
    console.log(`FAILED ${relative(process.cwd(), log)}: see its output`);
  }
}

/** Prints the failed tests of one vitest JSON report; returns how many there were. */
function printFailedTests(report: string): number {
  let count = 0;
  const { testResults = [] } = JSON.parse(readFileSync(report, 'utf8')) as JsonReport;
  for (const file of testResults) {
    const failed = file.assertionResults.filter((t) => t.status === 'failed');
    if (file.status === 'failed' && failed.length === 0) {
      count += 1;
      console.log(`FAILED ${relative(process.cwd(), file.name)}: ${String(file.message ?? '').split('\n').slice(0, 3).join(' | ')}`);
    }
    for (const test of failed) {
      count += 1;
      const why = (test.failureMessages ?? []).join('\n').split('\n').slice(0, 3).join(' | ');
      console.log(`FAILED ${relative(process.cwd(), file.name)} > ${test.fullName}: ${why.slice(0, 600)}`);
    }
  }
  return count;
}
