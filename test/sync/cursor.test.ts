/**
 * Cursors are opaque and bound to their vault: a cursor of another vault, of a vault that was
 * disabled and enabled again, a forged, malformed or future one, never silently continues.
 * The client gets ResyncRequiredError and does a full pull.
 */
import { describe, expect, test } from 'vitest';
import { ResyncRequiredError, ValidationError } from '../../src/errors.js';
import { envelope } from '../support/fixtures.js';
import { newVault, pullAll, put, recordsDigest, rejectionOf, setupSyncDatabase, summary } from './support/sync.js';

const ctx = setupSyncDatabase();

/** The vault id of a user, read behind the service's back, to forge cursors. */
async function vaultId(userId: string): Promise<string> {
  const { rows } = await ctx.db.pool.query<{ id: string }>('select id from vaults where user_id = $1', [userId]);
  return (rows[0] as { id: string }).id;
}

const forge = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** A vault with three records and a cursor that has seen them. */
async function vaultWithCursor(): Promise<{ user: string; cursor: string }> {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] });
  return { user, cursor: (await ctx.sync.pull(user, {})).cursor };
}

describe('binding to the vault', () => {
  test('a cursor from another user\'s vault is refused by pull and push, and the push writes nothing', async () => {
    const mine = await vaultWithCursor();
    const theirs = await vaultWithCursor();
    expect(await rejectionOf(ctx.sync.pull(mine.user, { cursor: theirs.cursor }))).toBeInstanceOf(ResyncRequiredError);
    const before = await recordsDigest(ctx.db.pool, mine.user);
    const error = await rejectionOf(ctx.sync.push(mine.user, { changes: [put('x', 0)], cursor: theirs.cursor }));
    expect(error).toBeInstanceOf(ResyncRequiredError);
    expect(error).toMatchObject({ code: 'resync_required', retryable: false });
    expect(await recordsDigest(ctx.db.pool, mine.user)).toBe(before);
  });

  test('a cursor from before disableVault + enableVault is refused, even when the new vault has reached the same position', async () => {
    const { user, cursor } = await vaultWithCursor();
    await ctx.sync.disableVault(user);
    await ctx.sync.enableVault(user, envelope());
    // Same user, same record ids, same number of changes: only the vault id tells them apart.
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0), put('d', 0)] });
    expect(await rejectionOf(ctx.sync.pull(user, { cursor }))).toBeInstanceOf(ResyncRequiredError);
    expect(await rejectionOf(ctx.sync.push(user, { changes: [], cursor }))).toBeInstanceOf(ResyncRequiredError);
    // The way out works: a full pull shows the new vault only.
    expect((await ctx.sync.pull(user, { cursor: null })).changes.map((c) => c.recordId)).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('malformed cursors', () => {
  test.each([
    ['empty', ''],
    ['not base64url', '!!!not-a-cursor!!!'],
    ['random text', 'garbage'],
    ['padded base64', 'djEu=='],
    ['very long', 'A'.repeat(10_000)],
  ])('%s: pull and push throw ResyncRequiredError', async (_name, cursor) => {
    const { user } = await vaultWithCursor();
    expect(await rejectionOf(ctx.sync.pull(user, { cursor }))).toBeInstanceOf(ResyncRequiredError);
    expect(await rejectionOf(ctx.sync.push(user, { changes: [], cursor }))).toBeInstanceOf(ResyncRequiredError);
  });

  test('forged cursors with a wrong prefix, a bad vault id, a bad or negative seq, or extra parts are refused', async () => {
    const { user } = await vaultWithCursor();
    const id = await vaultId(user);
    const forged = [
      `v2.${id}.1`,
      `v1.not-a-uuid.1`,
      `v1.${id.toUpperCase()}.1`,
      `v1.${id}.`,
      `v1.${id}.-1`,
      `v1.${id}.1.5`,
      `v1.${id}.1e2`,
      `v1.${id}.0x1`,
      `v1.${id}. 1`,
      `v1.${id}.99999999999999999999`,
      `v1.${id}.1.extra`,
      `v1.${id}`,
      `v2.${id}.1.`,
      `v2.${id}.1.-1`,
      `v2.${id}.1.x`,
      `v2.${id}.1.0.0`,
      `v2.${id}.1.99999999999999999999`,
      `v3.${id}.1.0`,
    ];
    for (const text of forged) {
      const cursor = forge(text);
      expect(await rejectionOf(ctx.sync.pull(user, { cursor })), text).toBeInstanceOf(ResyncRequiredError);
      expect(await rejectionOf(ctx.sync.push(user, { changes: [], cursor })), text).toBeInstanceOf(ResyncRequiredError);
    }
    // The same shapes with valid numbers are accepted: the refusals above are about the damage only.
    // (v1 is the format before cursors carried the purge horizon; it reads as horizon 0.)
    expect((await ctx.sync.pull(user, { cursor: forge(`v1.${id}.0`) })).changes).toHaveLength(3);
    expect((await ctx.sync.pull(user, { cursor: forge(`v2.${id}.0.0`) })).changes).toHaveLength(3);
  });

  test('a cursor ahead of the vault (from the future, or forged) is refused', async () => {
    const { user } = await vaultWithCursor();
    const id = await vaultId(user);
    for (const ahead of [forge(`v1.${id}.1000`), forge(`v2.${id}.1000.0`), forge(`v2.${id}.0.1000`)]) {
      expect(await rejectionOf(ctx.sync.pull(user, { cursor: ahead }))).toBeInstanceOf(ResyncRequiredError);
      expect(await rejectionOf(ctx.sync.push(user, { changes: [put('x', 0)], cursor: ahead }))).toBeInstanceOf(ResyncRequiredError);
    }
  });

  test('every truncation of a cursor is either refused or continues from an earlier point: it never skips a change', async () => {
    const { user, cursor: old } = await vaultWithCursor();
    await ctx.sync.push(user, { changes: [put('d', 0), put('a', 1)] });
    const expected = (await pullAll(ctx.sync, user, old)).changes.map(summary);
    expect(expected).toHaveLength(2);
    let refused = 0;
    for (let length = 0; length < old.length; length++) {
      const truncated = old.slice(0, length);
      try {
        const got = (await pullAll(ctx.sync, user, truncated)).changes.map(summary);
        // Accepted only as an earlier position of the same vault: everything after `old` is in it.
        for (const change of expected) expect(got).toContainEqual(change);
      } catch (error) {
        expect(error, `truncated to ${length}`).toBeInstanceOf(ResyncRequiredError);
        refused++;
      }
    }
    // Cutting into the vault id (most truncations) is refused outright.
    expect(refused).toBeGreaterThan(old.length / 2);
  });

  test('a cursor that is not a string is a ValidationError, not a resync', async () => {
    const { user } = await vaultWithCursor();
    expect(await rejectionOf(ctx.sync.pull(user, { cursor: 42 as unknown as string }))).toBeInstanceOf(ValidationError);
    expect(await rejectionOf(ctx.sync.push(user, { changes: [], cursor: {} as unknown as string }))).toBeInstanceOf(ValidationError);
  });
});
