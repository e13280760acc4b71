/**
 * A process that uses the embedded server, for the tests of sharing, reaping and exit codes:
 * `node --import tsx test/embedded/child.ts '<options json>' <mode>`. It prints one JSON line,
 * the handle or the error, then ends as `mode` says:
 *
 * - `exit`: just ends (the exit handler leaves the server);
 * - `stop`: calls `stop()`, then ends;
 * - `hold`: keeps running until its stdin closes, then ends;
 * - `exitCode:N`: sets `process.exitCode = N` and ends;
 * - `processExit:N`: calls `process.exit(N)`.
 */
import { EmbeddedServerError, startEmbeddedPostgres } from '../../src/embedded-postgres.js';

const options = JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof startEmbeddedPostgres>[0];
const mode = process.argv[3] ?? 'exit';

try {
  const handle = await startEmbeddedPostgres(options);
  console.log(JSON.stringify({ ok: true, origin: handle.origin, pid: handle.pid, url: handle.url, dataDir: handle.dataDir, logFile: handle.logFile }));
  if (mode === 'stop') await handle.stop();
  if (mode === 'hold') {
    process.stdin.resume();
    await new Promise((resolve) => process.stdin.on('end', resolve));
    process.stdin.pause();
  }
  if (mode.startsWith('exitCode:')) process.exitCode = Number(mode.slice('exitCode:'.length));
  if (mode.startsWith('processExit:')) process.exit(Number(mode.slice('processExit:'.length)));
} catch (error) {
  const e = error as EmbeddedServerError;
  console.log(JSON.stringify({ ok: false, name: e.name, reason: error instanceof EmbeddedServerError ? e.reason : undefined, message: e.message }));
  process.exitCode = 1;
}
