/**
 * Measuring: runs N cycles of one row in timed batches and reads what the engine counted.
 * The rows:
 *
 * - running (`"run"`): `engine.instantiate` + the workload's call + a read of one byte of each
 *   wasm page of each exported memory through `exports[name].buffer` + `dispose`, under each
 *   strategy; and the baseline, the runtime's own `new WebAssembly.Instance` + the same call +
 *   the same reads (an instance the runtime collects: nothing to dispose).
 * - allocator only (`"allocate"`): `engine.allocate` + a read of one byte of each wasm page of
 *   each memory of the handle + `dispose`. Nothing runs. The uffd row measures the same cycle
 *   as the mprotect row, so the two compare.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import type { Engine } from "../engine.ts";
import type { InstanceImports } from "../run/instance.ts";
import { WASM_PAGE_BYTES } from "../memory.ts";
import type { Module } from "../module.ts";
import { DemoExit } from "./exit.ts";
import { describeValue, sameResult, type Workload } from "./workload.ts";

/** The kind of cycle a row measures. */
export type CycleKind = "run" | "allocate";

/** The label of the baseline row. */
export const BASELINE = "WebAssembly.Instance";

/** The measurements of one row: one kind of cycle under one strategy (or the baseline). */
export interface StrategyResult {
  /** `"run"` (instances that run) or `"allocate"` (the allocator alone). */
  readonly cycle: CycleKind;
  /**
   * `"pooling (mprotect)"`, `"pooling (uffd)"`, `"on-demand"`, or `"WebAssembly.Instance"`
   * (the baseline: the runtime's own instances, run rows only).
   */
  readonly strategy: string;
  /** Cycles run: fewer than asked when the row ran out of time (`--seconds`). */
  readonly cycles: number;
  /** Median over batches of the mean µs of one cycle. */
  readonly usPerCycleMedian: number;
  /** Mean µs of one cycle over the whole run. */
  readonly usPerCycleMean: number;
  /** Wasm pages read (one byte each) over all cycles. */
  readonly pagesTouched: number;
  /** Calls of the workload's function over all cycles (run rows; 0 for allocate rows). */
  readonly calls: number;
  /** The process's resident set (VmRSS) after the cycles, engine still open, in MiB. */
  readonly rssMiB: number | null;
  /**
   * Run rows: `WebAssembly.Memory` objects made over all cycles (pooling: what the pool made;
   * on demand and the baseline: one per defined memory per instance). `null` otherwise.
   */
  readonly memoriesMade: number | null;
  /**
   * Run rows with pooling: instantiations served by an instance reset in place for its next
   * tenant (`stats().warmHits`); `null` otherwise.
   */
  readonly recycled: number | null;
  /**
   * Run rows with pooling: why the module's instances are not recycled
   * (`Module#notRecyclable`), or `null` when they are (or for other rows).
   */
  readonly notRecyclable: string | null;
  /** Allocate rows in uffd mode: pages the handler filled (copied + zeroed); else `null`. */
  readonly faultsServed: number | null;
  /** Allocate rows in uffd mode: pages copied from the module's image. */
  readonly pagesCopied: number | null;
  /** Allocate rows in uffd mode: pages filled with zeros. */
  readonly pagesZeroed: number | null;
  /** Allocate rows in uffd mode: accesses beyond a memory's size turned into traps. */
  readonly guardFaults: number | null;
  /** Allocate rows in uffd mode: bytes filled at instantiation from the working set. */
  readonly prefetchedBytes: number | null;
  /** `stats().instantiations` at the end (the baseline: the cycles). */
  readonly instantiations: number;
}

/** A row the demo could not run (userfaultfd unavailable, or the module cannot run). */
export interface SkippedStrategy {
  /** The kind of cycle. */
  readonly cycle: CycleKind;
  /** The row's label. */
  readonly strategy: string;
  /** Why it was skipped: the error message, which names the cause and the remedy. */
  readonly skipped: string;
}

/** Cycles per timed batch for a run of `cycles`: 20 batches or more, at most 100 per batch. */
export function batchSizeFor(cycles: number): number {
  return Math.max(1, Math.min(100, Math.floor(cycles / 20)));
}

// What the cycles read goes here, so that the reads cannot be optimized away.
let sink = 0;

function stderrIsTty(): boolean {
  return process.stderr.isTTY === true;
}

function progress(label: string, done: number, total: number): void {
  if (!stderrIsTty()) return;
  const percent = Math.floor((done / total) * 100);
  process.stderr.write(`\r${label}: ${done}/${total} cycles (${percent}%)\x1b[K`);
}

/** Clears the progress line, if there is one. */
export function clearProgress(): void {
  if (stderrIsTty()) process.stderr.write("\r\x1b[K");
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * The process's resident set in MiB: `VmRSS` of /proc/self/status, or where that cannot be
 * read (Deno reads /proc/self only with --allow-all) the runtime's own figure, which is the
 * same number on Linux.
 */
function rssMiB(): number | null {
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (match !== null) return round(Number(match[1]) / 1024, 1);
  } catch {
    // Fall through to the runtime's figure.
  }
  try {
    return round(process.memoryUsage.rss() / 2 ** 20, 1);
  } catch {
    return null;
  }
}

/** Reads one byte of each wasm page of `buffer`; returns the pages read. */
function touchPages(buffer: ArrayBufferLike): number {
  const view = new Uint8Array(buffer);
  let pages = 0;
  for (let at = 0; at < view.length; at += WASM_PAGE_BYTES) {
    sink ^= view[at];
    pages++;
  }
  return pages;
}

/** How many cycles a row runs, at most, and for how long. */
export interface RowBudget {
  /** Cycles, at most. */
  readonly cycles: number;
  /** The row stops at the end of the first batch that ends after this many milliseconds. */
  readonly ms: number;
}

/** The timing of a row. */
interface Timing {
  readonly cycles: number;
  readonly usPerCycleMedian: number;
  readonly usPerCycleMean: number;
  readonly pagesTouched: number;
}

/**
 * Runs `cycle` in batches, `budget.cycles` times or until `budget.ms` have passed; `cycle`
 * returns the pages it read.
 */
function timeCycles(label: string, budget: RowBudget, cycle: () => number): Timing {
  const cycles = budget.cycles;
  const batchSize = batchSizeFor(cycles);
  const batches: number[] = [];
  let pagesTouched = 0;
  let done = 0;
  progress(label, 0, cycles);
  const started = performance.now();
  while (done < cycles) {
    const n = Math.min(batchSize, cycles - done);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) pagesTouched += cycle();
    batches.push(((performance.now() - t0) * 1000) / n);
    done += n;
    progress(label, done, cycles);
    if (performance.now() - started > budget.ms) break;
  }
  const elapsed = performance.now() - started;
  clearProgress();
  return {
    cycles: done,
    usPerCycleMedian: round(median(batches), 3),
    usPerCycleMean: round((elapsed * 1000) / done, 3),
    pagesTouched,
  };
}

/** Throws unless a call's result is the runtime's own instance's (NaN equals NaN). */
function checkResult(label: string, workload: Workload, result: unknown): void {
  if (sameResult(result, workload.expected)) return;
  throw new DemoExit(
    `${label}: ${workload.call.name}() returned ${describeValue(result)}, but ` +
      `${describeValue(workload.expected)} on the runtime's own instance`,
    1,
  );
}

/** What a row without uffd counters reports for them. */
const NO_UFFD = {
  faultsServed: null,
  pagesCopied: null,
  pagesZeroed: null,
  guardFaults: null,
  prefetchedBytes: null,
} as const;

/**
 * The running cycle on `engine`: `engine.instantiate`, the call, a read of each wasm page of
 * each exported memory, `dispose`.
 */
export function measureRun(
  label: string,
  engine: Engine,
  module: Module,
  workload: Workload,
  definedMemories: number,
  budget: RowBudget,
): StrategyResult {
  const imports = workload.imports as InstanceImports;
  const call = workload.call.name;
  const expected = workload.expected;
  const memories = workload.memoryExports;
  const timing = timeCycles(label, budget, () => {
    using instance = engine.instantiate(module, imports);
    const exports = instance.exports;
    if (call !== null) {
      const result = (exports[call] as () => unknown)();
      if (!Object.is(result, expected)) checkResult(label, workload, result);
    }
    let pages = 0;
    for (const name of memories) pages += touchPages((exports[name] as WebAssembly.Memory).buffer);
    return pages;
  });
  const stats = engine.stats();
  const pooled = engine.config.allocationStrategy.pooling !== null;
  return {
    cycle: "run",
    strategy: label,
    ...timing,
    calls: call === null ? 0 : timing.cycles,
    rssMiB: rssMiB(),
    memoriesMade: pooled ? stats.hostMemoriesCreated : stats.instantiations * definedMemories,
    recycled: pooled ? stats.warmHits : null,
    notRecyclable: pooled ? module.notRecyclable : null,
    ...NO_UFFD,
    instantiations: stats.instantiations,
  };
}

/** The baseline: `new WebAssembly.Instance`, the same call, the same reads. */
export function measureBaseline(
  workload: Workload,
  compiled: WebAssembly.Module,
  definedMemories: number,
  budget: RowBudget,
): StrategyResult {
  const imports = workload.imports as WebAssembly.Imports;
  const call = workload.call.name;
  const expected = workload.expected;
  const memories = workload.memoryExports;
  const timing = timeCycles(BASELINE, budget, () => {
    const exports = new WebAssembly.Instance(compiled, imports).exports;
    if (call !== null) {
      const result = (exports[call] as () => unknown)();
      if (!Object.is(result, expected)) checkResult(BASELINE, workload, result);
    }
    let pages = 0;
    for (const name of memories) pages += touchPages((exports[name] as WebAssembly.Memory).buffer);
    return pages;
  });
  return {
    cycle: "run",
    strategy: BASELINE,
    ...timing,
    calls: call === null ? 0 : timing.cycles,
    rssMiB: rssMiB(),
    memoriesMade: timing.cycles * definedMemories,
    recycled: null,
    notRecyclable: null,
    ...NO_UFFD,
    instantiations: timing.cycles,
  };
}

/** The allocator alone: `engine.allocate`, a read of each wasm page of each memory, `dispose`. */
export function measureAllocate(
  label: string,
  engine: Engine,
  module: Module,
  workload: Workload,
  budget: RowBudget,
): StrategyResult {
  const imports = workload.imports;
  const timing = timeCycles(label, budget, () => {
    using instance = engine.allocate(module, imports);
    let pages = 0;
    for (const memory of instance.memories) pages += touchPages(memory.buffer);
    return pages;
  });
  const stats = engine.stats();
  const uffd = engine.config.allocationStrategy.pooling?.uffd === true;
  return {
    cycle: "allocate",
    strategy: label,
    ...timing,
    calls: 0,
    rssMiB: rssMiB(),
    memoriesMade: null,
    recycled: null,
    notRecyclable: null,
    ...(uffd
      ? {
        faultsServed: stats.uffdPagesCopied + stats.uffdPagesZeroed,
        pagesCopied: stats.uffdPagesCopied,
        pagesZeroed: stats.uffdPagesZeroed,
        guardFaults: stats.uffdGuardFaults,
        prefetchedBytes: stats.uffdPrefetchedBytes,
      }
      : NO_UFFD),
    instantiations: stats.instantiations,
  };
}
