/**
 * What the demo reports: the shape `--json` prints and the table is made from.
 *
 * @module
 */

import type { FitReport } from "./fit.ts";
import type { SkippedStrategy, StrategyResult } from "./measure.ts";
import type { CallReport, ModuleSummary } from "./workload.ts";

/** What `--json` prints. */
export interface DemoReport {
  /** Runtime name and version, e.g. `"deno 2.9.6"`. */
  readonly runtime: string;
  /** Cycles per row, at most (each row says how many it ran). */
  readonly cycles: number;
  /** A row stops after this many seconds, at the end of a batch. */
  readonly secondsPerRow: number;
  /** Cycles per timed batch. */
  readonly batchSize: number;
  /** Instance slots of the pooling engines. */
  readonly poolSlots: number;
  /** The module. */
  readonly module: ModuleSummary;
  /** Its fit against the default limits. */
  readonly fit: FitReport;
  /** The function each running cycle calls, or why none. */
  readonly call: CallReport;
  /** Exported memories whose wasm pages each running cycle reads. */
  readonly memoryExports: readonly string[];
  /**
   * One entry per row, in the order run: the running rows (`cycle: "run"`: each strategy,
   * then the baseline), then the allocator-only rows (`cycle: "allocate"`).
   */
  readonly results: readonly (StrategyResult | SkippedStrategy)[];
}

/** Whether a row was measured (not skipped). */
export function isResult(row: StrategyResult | SkippedStrategy): row is StrategyResult {
  return !("skipped" in row);
}
