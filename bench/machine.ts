/**
 * Names the machine and server a bench run came from, so a table is never quoted without them.
 *
 * @module
 */
import os from 'node:os';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { DatabaseSource } from '../src/database-url.js';

/** Where the numbers were measured. */
export interface MachineInfo {
  os: string;
  cpus: string;
  memoryGiB: number;
  node: string;
  mikroOrm: string;
  postgres: string;
  /** `embedded` (this package's own PostgreSQL) or `DATABASE_URL`. */
  database: DatabaseSource;
  /** 1-minute load average when the run started: a busy machine makes noisy numbers. */
  loadAtStart: number;
  date: string;
}

async function osName(): Promise<string> {
  const release = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const pretty = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(release)?.[1];
  return `${pretty ?? os.type()} (${os.platform()} ${os.release()}, ${os.arch()})`;
}

/** Describes this machine and the given server. */
export async function machineInfo(postgres: string, database: DatabaseSource): Promise<MachineInfo> {
  const cpus = os.cpus();
  const require = createRequire(import.meta.url);
  const mikro = require('@mikro-orm/core/package.json') as { version: string };
  return {
    os: await osName(),
    cpus: `${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown'}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    mikroOrm: mikro.version,
    postgres,
    database,
    loadAtStart: os.loadavg()[0] ?? 0,
    date: new Date().toISOString(),
  };
}
