/**
 * The push-time-vs-batch-size chart, drawn by vega-lite and rendered to SVG headless (vega's
 * `View#toSVG` needs no browser and no canvas).
 *
 * @module
 */
import { writeFile } from 'node:fs/promises';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { ScenarioResult } from './harness.js';

/** One point of the chart. */
interface Point {
  batch: number;
  implementation: string;
  median: number;
  min: number;
  max: number;
}

/** The vega-lite spec: medians as lines with points, min-max as error bars. */
export function chartSpec(sweep: ScenarioResult[], subtitle: string): TopLevelSpec {
  const values: Point[] = sweep.flatMap((s) => [
    { batch: s.rowsPerRun, implementation: 'SyncService (MikroORM)', median: s.service.stats.median, min: s.service.stats.min, max: s.service.stats.max },
    { batch: s.rowsPerRun, implementation: 'baseline (hand-written pg)', median: s.baseline.stats.median, min: s.baseline.stats.min, max: s.baseline.stats.max },
  ]);
  const x = { field: 'batch', type: 'quantitative', title: 'changes per push (40% creates, 40% updates, 20% deletes)' } as const;
  const color = { field: 'implementation', type: 'nominal', title: null, legend: { orient: 'top-left', labelLimit: 400 } } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Push time against batch size', subtitle },
    width: 560,
    height: 320,
    background: 'white',
    data: { values },
    layer: [
      { mark: { type: 'rule' }, encoding: { x, y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' }, color } },
      {
        mark: { type: 'line', point: true },
        encoding: { x, y: { field: 'median', type: 'quantitative', title: 'median push time (ms), bars: min-max' }, color },
      },
    ],
  };
}

/** Renders the chart to `file` as SVG. */
export async function writeChart(file: string, sweep: ScenarioResult[], subtitle: string): Promise<void> {
  const view = new vega.View(vega.parse(compile(chartSpec(sweep, subtitle)).spec), { renderer: 'none' });
  await writeFile(file, await view.toSVG());
  view.finalize();
}
