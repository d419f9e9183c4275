/**
 * The demo from start to end: reads the module, reports its fit, works out the cycle, runs
 * every row (instances that run under each strategy, the runtime's own instances, the
 * allocator alone under each strategy), and prints the table or the JSON report.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { Config, InstanceAllocationStrategy, type ModuleLimits } from "../config.ts";
import { demoModuleBytes } from "../demo_module.ts";
import { Engine } from "../engine.ts";
import {
  MalformedModuleError,
  UffdUnavailableError,
  UnsupportedFeatureError,
  WasmpoolError,
} from "../errors.ts";
import { Module } from "../module.ts";
import type { ParsedModule } from "../module/types.ts";
import { DemoExit } from "./exit.ts";
import { checkFit, type FitReport } from "./fit.ts";
import { formatHead, formatTables } from "./format.ts";
import {
  batchSizeFor,
  clearProgress,
  type CycleKind,
  measureAllocate,
  measureBaseline,
  measureRun,
  type RowBudget,
  type SkippedStrategy,
  type StrategyResult,
} from "./measure.ts";
import { type DemoOptions, parseOptions, USAGE, UsageError } from "./options.ts";
import { type DemoReport, isResult } from "./report.ts";
import { planWorkload, summarize, type Workload } from "./workload.ts";

/** Instance slots of the demo's pooling engines (one instance is alive at a time). */
export const DEMO_POOL_SLOTS = 100;

function runtimeName(): string {
  const g = globalThis as {
    Bun?: { version: string };
    Deno?: { version: { deno: string } };
  };
  if (g.Bun !== undefined) return `bun ${g.Bun.version}`;
  if (g.Deno !== undefined) return `deno ${g.Deno.version.deno}`;
  return `node ${process.versions.node}`;
}

function readModule(path: string): Uint8Array<ArrayBuffer> {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new DemoExit(`cannot read ${path}: ${(error as Error).message}`, 1);
  }
}

function pooling(raised: Partial<ModuleLimits>, uffd: boolean): InstanceAllocationStrategy {
  return InstanceAllocationStrategy.pooling({
    moduleLimits: raised,
    instanceLimits: { count: DEMO_POOL_SLOTS },
    uffd,
  });
}

/** The strategies of the rows, by label. */
function strategies(fit: FitReport): [string, () => InstanceAllocationStrategy][] {
  return [
    ["pooling (mprotect)", () => pooling(fit.raised, false)],
    ["pooling (uffd)", () => pooling(fit.raised, true)],
    ["on-demand", () => InstanceAllocationStrategy.onDemand()],
  ];
}

/**
 * Measures one row on a fresh engine of `strategy`, closed afterwards. An engine that cannot
 * be made for want of userfaultfd skips the row; a WasmpoolError while measuring ends the demo.
 */
function row(
  cycle: CycleKind,
  label: string,
  strategy: () => InstanceAllocationStrategy,
  bytes: Uint8Array,
  measure: (engine: Engine, module: Module) => StrategyResult,
): StrategyResult | SkippedStrategy {
  let engine: Engine;
  try {
    engine = new Engine(new Config().withAllocationStrategy(strategy()));
  } catch (error) {
    if (error instanceof UffdUnavailableError) {
      return { cycle, strategy: label, skipped: error.message };
    }
    throw error;
  }
  try {
    return measure(engine, new Module(engine, bytes));
  } catch (error) {
    if (error instanceof WasmpoolError) {
      throw new DemoExit(`${label}: ${error.name}: ${error.message}`, 1);
    }
    throw error;
  } finally {
    clearProgress();
    engine.close();
  }
}

/** Every row: the running ones (each strategy, then the baseline), then the allocator's. */
function measureRows(
  bytes: Uint8Array,
  parsed: ParsedModule,
  fit: FitReport,
  workload: Workload,
  budget: RowBudget,
): (StrategyResult | SkippedStrategy)[] {
  const defined = parsed.memories.length;
  const results: (StrategyResult | SkippedStrategy)[] = [];
  const compiled = workload.compiled;
  for (const [label, strategy] of strategies(fit)) {
    if (compiled === null) {
      results.push({ cycle: "run", strategy: label, skipped: workload.unrunnable ?? "" });
      continue;
    }
    results.push(
      row(
        "run",
        label,
        strategy,
        bytes,
        (engine, module) => measureRun(label, engine, module, workload, defined, budget),
      ),
    );
  }
  if (compiled !== null) results.push(measureBaseline(workload, compiled, defined, budget));
  for (const [label, strategy] of strategies(fit)) {
    results.push(
      row(
        "allocate",
        label,
        strategy,
        bytes,
        (engine, module) => measureAllocate(label, engine, module, workload, budget),
      ),
    );
  }
  return results;
}

function demo(options: DemoOptions): DemoReport {
  const source = options.path ?? "embedded";
  const bytes = options.path === null ? demoModuleBytes() : readModule(options.path);
  let checked: { fit: FitReport; parsed: ParsedModule };
  try {
    checked = checkFit(bytes);
  } catch (error) {
    if (error instanceof MalformedModuleError || error instanceof UnsupportedFeatureError) {
      // The message has the byte offset.
      throw new DemoExit(`${source}: ${error.message}`, 1);
    }
    throw error;
  }
  const { fit, parsed } = checked;
  const workload = planWorkload(bytes, parsed, options.call);
  const head: DemoReport = {
    runtime: runtimeName(),
    cycles: options.cycles,
    secondsPerRow: options.seconds,
    batchSize: batchSizeFor(options.cycles),
    poolSlots: DEMO_POOL_SLOTS,
    module: summarize(source, bytes, parsed),
    fit,
    call: workload.call,
    memoryExports: workload.memoryExports,
    results: [],
  };
  // The module report comes first, before the measuring.
  if (!options.json) console.log(formatHead(head).join("\n"));
  const budget = { cycles: options.cycles, ms: options.seconds * 1000 };
  return { ...head, results: measureRows(bytes, parsed, fit, workload, budget) };
}

/**
 * Runs the demo with command-line arguments and returns the exit status: 0 on success, 1 when
 * the module cannot be read, is malformed or cannot be instantiated, 2 for a usage error or
 * imports the demo cannot provide.
 *
 * @param args The arguments after the program name.
 */
export function main(args: readonly string[]): number {
  let options: DemoOptions;
  try {
    options = parseOptions(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    const report = demo(options);
    if (options.json) console.log(JSON.stringify(report, null, 2));
    else console.log(formatTables(report).join("\n"));
    return report.results.some(isResult) ? 0 : 1;
  } catch (error) {
    clearProgress();
    if (error instanceof DemoExit) {
      console.error(error.message);
      return error.code;
    }
    if (error instanceof WasmpoolError) {
      console.error(`${error.name}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}
