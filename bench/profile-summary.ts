/**
 * Reads a V8 CPU profile (`.cpuprofile`, from `node --cpu-prof` or the inspector) and says where
 * the time went: self time per function, self time per package, and inclusive time of the
 * functions that were on the stack most.
 *
 * Usage: `tsx bench/profile-summary.ts <file.cpuprofile>... [--top=N]` (several files are summed)
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** The parts of a `.cpuprofile` this summary reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** One line of a summary: a name and its time in ms and as a share of the total. */
export interface Share {
  name: string;
  ms: number;
  percent: number;
}

/** Where the time of a profile went. */
export interface ProfileSummary {
  /** Everything sampled, idle included. */
  totalMs: number;
  /** Waiting with nothing to run: for a push, mostly waiting on the database. */
  idleMs: number;
  /** Samples inside the inspector's own calls (starting and stopping the profiler), left out. */
  overheadMs: number;
  selfByFunction: Share[];
  selfByPackage: Share[];
  inclusiveByFunction: Share[];
}

/** `node_modules/@scope/pkg/...` → `@scope/pkg`; project files by folder; V8's pseudo-frames as they are. */
export function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = path.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? path);
  }
  if (path.startsWith('node:')) return 'node (internal)';
  const project = /\/(src|bench|scripts|test)\//.exec(path);
  return project ? `project ${project[1]}/` : path;
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (!url) return functionName || '(anonymous)';
  const file = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(src|bench|scripts)\//, '$1/');
  return `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
}

function top(map: Map<string, number>, total: number, n: number): Share[] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: us / 1000, percent: (100 * us) / total }));
}

interface Totals {
  total: number;
  idle: number;
  overhead: number;
}

/**
 * Charges one profile's busy samples to the three maps (microseconds) and adds its totals. The
 * shares are of busy time: idle samples and the profiler's own calls are counted apart.
 */
function charge(profile: CpuProfile, self: Map<string, number>, packages: Map<string, number>, inclusive: Map<string, number>, totals: Totals): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const stack = (id: number): ProfileNode[] => {
    const frames: ProfileNode[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur);
      if (frame && frame.callFrame.functionName !== '(root)') frames.push(frame);
    }
    return frames;
  };
  profile.samples.forEach((id, i) => {
    // A sample's delta is the time since the previous one; it is charged to the new sample.
    const us = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) return;
    totals.total += us;
    if (node.callFrame.functionName === '(idle)') {
      totals.idle += us;
      return;
    }
    const frames = stack(id);
    if (frames.some((f) => f.callFrame.url === 'node:inspector')) {
      totals.overhead += us;
      return;
    }
    const name = label(node);
    self.set(name, (self.get(name) ?? 0) + us);
    const pkg = packageOf(node.callFrame.url, node.callFrame.functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
    // Recursion would count a frame twice; inclusive time counts each function once per sample.
    for (const key of new Set(frames.map(label))) inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  });
}

/** Summarizes one or more profiles (of repeated runs of the same work); `n` lines per list. */
export function summarize(profiles: CpuProfile[], n = 25): ProfileSummary {
  const self = new Map<string, number>();
  const packages = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const totals: Totals = { total: 0, idle: 0, overhead: 0 };
  for (const profile of profiles) charge(profile, self, packages, inclusive, totals);
  const busy = totals.total - totals.idle - totals.overhead;
  return {
    totalMs: totals.total / 1000,
    idleMs: totals.idle / 1000,
    overheadMs: totals.overhead / 1000,
    selfByFunction: top(self, busy, n),
    selfByPackage: top(packages, busy, n),
    inclusiveByFunction: top(inclusive, busy, n),
  };
}

/** The summary as markdown tables. */
export function renderSummary(s: ProfileSummary): string {
  const table = (title: string, rows: Share[]) => [
    `### ${title}`,
    '',
    '| ms | % | where |',
    '|---:|---:|---|',
    ...rows.map((r) => `| ${r.ms.toFixed(0)} | ${r.percent.toFixed(1)} | \`${r.name}\` |`),
    '',
  ];
  return [
    `Profiled ${s.totalMs.toFixed(0)} ms: ${s.idleMs.toFixed(0)} ms idle (waiting, mostly on the database), ` +
      `${(s.totalMs - s.idleMs - s.overheadMs).toFixed(0)} ms on the CPU (the shares below are of this), ${s.overheadMs.toFixed(0)} ms in the profiler itself.`,
    '',
    ...table('Self time by package', s.selfByPackage),
    ...table('Self time by function', s.selfByFunction),
    ...table('Inclusive time by function', s.inclusiveByFunction),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const files = process.argv.slice(2).filter((a) => a.endsWith('.cpuprofile'));
  if (files.length === 0) {
    console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile>... [--top=N]');
    process.exit(2);
  }
  const profiles = await Promise.all(files.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as CpuProfile));
  const topArg = process.argv.find((a) => a.startsWith('--top='));
  console.log(renderSummary(summarize(profiles, Number(topArg?.slice(6) ?? 25))));
}
