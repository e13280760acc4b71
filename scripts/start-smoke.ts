/**
 * CI's check of `npm start` as a newcomer runs it: the real command, in the environment it is
 * given (the embedded server when DATABASE_URL is unset; the app role through PgBouncer on the
 * Neon-shaped stack). It waits for the printed URL, checks health and the page, enables a vault,
 * pushes and pulls a record with a dev-mode token, then sends SIGTERM, after which the server must
 * finish and say `stopped.`. Prints `npm start: ok` or throws.
 */
import { randomBytes } from 'node:crypto';
import { startNpmStart, type NpmStart } from './npm-start-process.js';

const b64url = (bytes: Buffer) => bytes.toString('base64url');

async function expectOk(res: Response, what: string): Promise<unknown> {
  const body = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${body}`);
  return body.startsWith('{') ? JSON.parse(body) : body;
}

async function check(server: NpmStart): Promise<void> {
  const { base } = server;
  const health = (await expectOk(await fetch(`${base}/v1/health`), 'GET /v1/health')) as { database?: string };
  if (health.database !== 'ok') throw new Error(`GET /v1/health: ${JSON.stringify(health)}`);
  const page = (await expectOk(await fetch(`${base}/`), 'GET /')) as string;
  if (!page.includes('<title>vault-db')) throw new Error('GET / is not the bookmark page');

  const user = `smoke${randomBytes(4).toString('hex')}`;
  const { token } = (await expectOk(await fetch(`${base}/dev/token`, { method: 'POST', body: JSON.stringify({ user }) }), 'POST /dev/token')) as { token: string };
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const envelope = { wrappedKey: b64url(randomBytes(60)), salt: b64url(randomBytes(16)), kdfParams: { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 } };
  await expectOk(await fetch(`${base}/v1/vault`, { method: 'POST', headers, body: JSON.stringify(envelope) }), 'POST /v1/vault');
  const ciphertext = b64url(randomBytes(48));
  await expectOk(await fetch(`${base}/v1/vault/push`, { method: 'POST', headers, body: JSON.stringify({ changes: [{ recordId: 'smoke-1', baseVersion: 0, ciphertext }] }) }), 'POST /v1/vault/push');
  const pulled = (await expectOk(await fetch(`${base}/v1/vault/changes`, { headers }), 'GET /v1/vault/changes')) as { changes: { recordId: string; ciphertext: string }[] };
  if (pulled.changes.length !== 1 || pulled.changes[0]!.ciphertext !== ciphertext) throw new Error(`pull returned ${JSON.stringify(pulled)}`);

  // As a terminal's Ctrl-C or a supervisor would: the signal to the whole process group. npm
  // itself then ends by the signal; the server must finish cleanly ("stopped." comes only then).
  if (!(await server.stop()).includes('stopped.')) throw new Error(`npm start did not stop cleanly after SIGTERM:\n${server.output()}`);
  console.log(`npm start: ok (${base}; health, page, enable, push, pull, SIGTERM)`);
}

const server = await startNpmStart({ ...process.env, PORT: '0' }).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
await check(server).catch(async (error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  await server.stop('SIGKILL');
  process.exit(1);
});
