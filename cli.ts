/**
 * The wasmpool demo: instantiates a module thousands of times under each allocation strategy
 * (pooling with mprotect, pooling with userfaultfd, on demand) in the current runtime, touching
 * every wasm page of its initial memory as a user would, and prints a comparison table: time
 * per cycle, wasm pages touched, resident memory, faults served, instantiations.
 *
 * Without an argument it runs on an embedded default module (see `src/demo_module.ts`). With a
 * path it runs on that module, after reporting whether it fits `DEFAULT_MODULE_LIMITS` (and, if
 * not, which limits it breaks and how far the demo raises them).
 *
 * ```sh
 * deno run -A jsr:@wasmpool/core/cli [--cycles N] [--json] [module.wasm]
 * bun cli.ts [--cycles N] [--json] [module.wasm]
 * ```
 *
 * Exit status: 0 on success, 1 when the module cannot be read, is malformed or cannot be
 * instantiated, 2 for a usage error or imports the demo cannot provide.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import {
  Config,
  DEFAULT_MODULE_LIMITS,
  Engine,
  type Imports,
  InstanceAllocationStrategy,
  LimitError,
  MalformedModuleError,
  Module,
  type ModuleLimits,
  UffdUnavailableError,
  UnsupportedFeatureError,
  WASM_PAGE_BYTES,
  WasmpoolError,
} from "./mod.ts";
import { DEMO_MODULE_DESCRIPTION, demoModuleBytes } from "./src/demo_module.ts";
import { parseModule } from "./src/module/parse.ts";
import type { ParsedModule } from "./src/module/types.ts";

/** Cycles per strategy unless `--cycles` says otherwise. */
export const DEFAULT_CYCLES = 5000;

/** Instance slots of the demo's pooling engines (one instance is alive at a time). */
export const DEMO_POOL_SLOTS = 100;

/** One module limit the module breaks: what it needs against the default. */
export interface BrokenLimit {
  /** The `ModuleLimits` field. */
  readonly limit: keyof ModuleLimits;
  /** The module's own count (for `memoryPages`/`tableElements`: its largest minimum). */
  readonly needed: number;
  /** The value in `DEFAULT_MODULE_LIMITS`. */
  readonly default: number;
}

/** Whether the module fits `DEFAULT_MODULE_LIMITS`, and what the demo raised if not. */
export interface FitReport {
  /** True when `new Module` accepted it under the default limits. */
  readonly fits: boolean;
  /** The `LimitError` message (names the first limit broken and the value), or `null`. */
  readonly message: string | null;
  /** Every limit the module breaks, from its own counts. */
  readonly broken: readonly BrokenLimit[];
  /** The module limits the demo's pooling engines use: only the broken ones, raised. */
  readonly raised: Partial<ModuleLimits>;
}

/** What the demo knows about the module it runs. */
export interface ModuleSummary {
  /** `"embedded"` or the path given. */
  readonly source: string;
  /** Size of the binary. */
  readonly bytes: number;
  /** Initial and maximum pages of each defined memory. */
  readonly memories: readonly { readonly min: number; readonly max: number | null }[];
  /** Initial and maximum elements of each defined table. */
  readonly tables: readonly { readonly min: number; readonly max: number | null }[];
  /** Active and passive data segments. */
  readonly dataSegments: number;
  /** Bytes in all data segments. */
  readonly dataBytes: number;
  /** Imports by kind. */
  readonly imports: Readonly<Record<"function" | "table" | "memory" | "global", number>>;
}

/** The measurements of one strategy. */
export interface StrategyResult {
  /** `"pooling (mprotect)"`, `"pooling (uffd)"` or `"on-demand"`. */
  readonly strategy: string;
  /** Median over batches of the mean µs of one cycle (instantiate, touch, dispose). */
  readonly usPerCycleMedian: number;
  /** Mean µs of one cycle over the whole run. */
  readonly usPerCycleMean: number;
  /** Wasm pages read (one byte each) over all cycles. */
  readonly pagesTouched: number;
  /** The process's resident set (VmRSS) after the cycles, engine still open, in MiB. */
  readonly rssMiB: number | null;
  /** uffd only: pages the handler filled (copied + zeroed); `null` in other modes. */
  readonly faultsServed: number | null;
  /** uffd only: pages copied from the module's image. */
  readonly pagesCopied: number | null;
  /** uffd only: pages filled with zeros. */
  readonly pagesZeroed: number | null;
  /** uffd only: accesses beyond a memory's size turned into traps. */
  readonly guardFaults: number | null;
  /** uffd only: bytes filled at instantiation from the module's working set. */
  readonly prefetchedBytes: number | null;
  /** `stats().instantiations` at the end. */
  readonly instantiations: number;
}

/** A strategy the demo could not run (userfaultfd unavailable). */
export interface SkippedStrategy {
  /** The strategy's label. */
  readonly strategy: string;
  /** Why it was skipped: the error message, which names the cause and the remedy. */
  readonly skipped: string;
}

/** What `--json` prints. */
export interface DemoReport {
  /** Runtime name and version, e.g. `"deno 2.9.6"`. */
  readonly runtime: string;
  /** Cycles per strategy. */
  readonly cycles: number;
  /** Cycles per timed batch. */
  readonly batchSize: number;
  /** Instance slots of the pooling engines. */
  readonly poolSlots: number;
  /** The module. */
  readonly module: ModuleSummary;
  /** Its fit against the default limits. */
  readonly fit: FitReport;
  /** One entry per strategy, in the order run. */
  readonly results: readonly (StrategyResult | SkippedStrategy)[];
}

interface Options {
  readonly cycles: number;
  readonly json: boolean;
  readonly help: boolean;
  readonly path: string | null;
}

const USAGE = `usage: cli.ts [--cycles N] [--json] [module.wasm]

Instantiates the module (default: an embedded 1-page module) N times (default ${DEFAULT_CYCLES})
under each allocation strategy and prints a comparison table.

  --cycles N   instantiate+dispose cycles per strategy
  --json       print the results as JSON instead of the table
  -h, --help   this text`;

/** A usage error: exit status 2. */
class UsageError extends Error {}

/** An input the demo cannot work with: exit status `code`. */
class DemoExit extends Error {
  readonly code: number;
  constructor(message: string, code: number) {
    super(message);
    this.code = code;
  }
}

function parseOptions(args: readonly string[]): Options {
  let cycles = DEFAULT_CYCLES;
  let json = false;
  let help = false;
  let path: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--json") json = true;
    else if (arg === "-h" || arg === "--help") help = true;
    else if (arg === "--cycles" || arg.startsWith("--cycles=")) {
      const text = arg === "--cycles" ? args[++i] : arg.slice("--cycles=".length);
      const value = Number(text);
      if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
        throw new UsageError(
          `--cycles expects a whole number of at least 1, got ${text ?? "nothing"}`,
        );
      }
      cycles = value;
    } else if (arg.startsWith("-") && arg !== "-") {
      throw new UsageError(`unknown option ${arg}`);
    } else if (path === null) path = arg;
    else throw new UsageError(`one module at a time: got ${path} and ${arg}`);
  }
  return { cycles, json, help, path };
}

function runtimeName(): string {
  const g = globalThis as {
    Bun?: { version: string };
    Deno?: { version: { deno: string } };
  };
  if (g.Bun !== undefined) return `bun ${g.Bun.version}`;
  if (g.Deno !== undefined) return `deno ${g.Deno.version.deno}`;
  return `node ${process.versions.node}`;
}

function stderrIsTty(): boolean {
  return process.stderr.isTTY === true;
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
    if (match !== null) return Number(match[1]) / 1024;
  } catch {
    // Fall through to the runtime's figure.
  }
  try {
    return process.memoryUsage.rss() / 2 ** 20;
  } catch {
    return null;
  }
}

const LIMIT_ORDER: readonly (keyof ModuleLimits)[] = [
  "importedFunctions",
  "importedTables",
  "importedMemories",
  "importedGlobals",
  "types",
  "functions",
  "tables",
  "memories",
  "globals",
  "tableElements",
  "memoryPages",
];

/** The value of each module limit this module needs, from its own counts. */
function moduleNeeds(parsed: ParsedModule): Record<keyof ModuleLimits, number> {
  const imported = (kind: string): number =>
    parsed.imports.filter((i) => i.desc.kind === kind).length;
  return {
    importedFunctions: imported("function"),
    importedTables: imported("table"),
    importedMemories: imported("memory"),
    importedGlobals: imported("global"),
    types: parsed.types.length,
    functions: parsed.functions.length,
    tables: parsed.tables.length,
    memories: parsed.memories.length,
    globals: parsed.globals.length,
    tableElements: Math.max(0, ...parsed.tables.map((t) => t.min)),
    memoryPages: Math.max(0, ...parsed.memories.map((m) => m.min)),
  };
}

/**
 * Translates the module for a pooling engine with the default module limits. Malformed or
 * unsupported input throws (exit 1); a `LimitError` is reported and the limits raised.
 */
function checkFit(bytes: Uint8Array): { fit: FitReport; parsed: ParsedModule } {
  let message: string | null = null;
  {
    using engine = new Engine(
      new Config().withAllocationStrategy(
        InstanceAllocationStrategy.pooling({ instanceLimits: { count: 1 } }),
      ),
    );
    try {
      new Module(engine, bytes);
    } catch (error) {
      if (!(error instanceof LimitError)) throw error;
      message = error.message;
    }
  }
  // The module parsed (a LimitError comes after parsing), so this does not throw.
  const parsed = parseModule(bytes);
  const needs = moduleNeeds(parsed);
  const broken: BrokenLimit[] = [];
  const raised: Partial<Record<keyof ModuleLimits, number>> = {};
  for (const limit of LIMIT_ORDER) {
    if (needs[limit] > DEFAULT_MODULE_LIMITS[limit]) {
      broken.push({ limit, needed: needs[limit], default: DEFAULT_MODULE_LIMITS[limit] });
      raised[limit] = needs[limit];
    }
  }
  if (message !== null && broken.length === 0) {
    throw new DemoExit(`the module breaks a limit the demo cannot raise: ${message}`, 1);
  }
  return { fit: { fits: message === null, message, broken, raised }, parsed };
}

function summarize(source: string, bytes: Uint8Array, parsed: ParsedModule): ModuleSummary {
  const imports = { function: 0, table: 0, memory: 0, global: 0 };
  for (const i of parsed.imports) imports[i.desc.kind]++;
  return {
    source,
    bytes: bytes.byteLength,
    memories: parsed.memories.map((m) => ({ min: m.min, max: m.max })),
    tables: parsed.tables.map((t) => ({ min: t.min, max: t.max })),
    dataSegments: parsed.data.length,
    dataBytes: parsed.data.reduce((sum, d) => sum + d.data.byteLength, 0),
    imports,
  };
}

/** Function imports get stubs that throw; any other import ends the demo (exit 2). */
function stubImports(parsed: ParsedModule): Imports {
  const others = parsed.imports.filter((i) => i.desc.kind !== "function");
  if (others.length > 0) {
    const list = others.map((i) =>
      `  ${i.desc.kind} ${JSON.stringify(i.module)}.${JSON.stringify(i.name)}`
    );
    throw new DemoExit(
      `the module imports ${others.length} item(s) the demo cannot provide: it stubs ` +
        "functions (stubs that throw),\nbut memories, tables and globals must come from the " +
        `embedder:\n${list.join("\n")}`,
      2,
    );
  }
  const imports: Record<string, Record<string, () => never>> = {};
  for (const i of parsed.imports) {
    const name = `${i.module}.${i.name}`;
    imports[i.module] ??= {};
    imports[i.module][i.name] = (): never => {
      throw new Error(`${name} is a stub of the wasmpool demo`);
    };
  }
  return imports;
}

// What the touch loop reads goes here, so that the reads cannot be optimized away.
let sink = 0;

function progress(label: string, done: number, total: number): void {
  if (!stderrIsTty()) return;
  const percent = Math.floor((done / total) * 100);
  process.stderr.write(`\r${label}: ${done}/${total} cycles (${percent}%)\x1b[K`);
}

function clearProgress(): void {
  if (stderrIsTty()) process.stderr.write("\r\x1b[K");
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function batchSizeFor(cycles: number): number {
  return Math.max(1, Math.min(100, Math.floor(cycles / 20)));
}

function runStrategy(
  label: string,
  strategy: () => InstanceAllocationStrategy,
  bytes: Uint8Array,
  imports: Imports,
  cycles: number,
): StrategyResult | SkippedStrategy {
  let engine: Engine;
  try {
    engine = new Engine(new Config().withAllocationStrategy(strategy()));
  } catch (error) {
    if (error instanceof UffdUnavailableError) return { strategy: label, skipped: error.message };
    throw error;
  }
  try {
    return measure(label, engine, bytes, imports, cycles);
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

/** Runs the cycles on `engine` and reads its stats. */
function measure(
  label: string,
  engine: Engine,
  bytes: Uint8Array,
  imports: Imports,
  cycles: number,
): StrategyResult {
  const module = new Module(engine, bytes);
  const batchSize = batchSizeFor(cycles);
  const batches: number[] = [];
  let pagesTouched = 0;
  let done = 0;
  progress(label, 0, cycles);
  const started = performance.now();
  while (done < cycles) {
    const n = Math.min(batchSize, cycles - done);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      using instance = engine.allocate(module, imports);
      for (const memory of instance.memories) {
        const view = new Uint8Array(memory.buffer);
        for (let at = 0; at < view.length; at += WASM_PAGE_BYTES) {
          sink ^= view[at];
          pagesTouched++;
        }
      }
    }
    batches.push(((performance.now() - t0) * 1000) / n);
    done += n;
    progress(label, done, cycles);
  }
  const elapsed = performance.now() - started;
  clearProgress();
  const stats = engine.stats();
  const uffd = engine.config.allocationStrategy.pooling?.uffd === true;
  return {
    strategy: label,
    usPerCycleMedian: round(median(batches), 3),
    usPerCycleMean: round((elapsed * 1000) / cycles, 3),
    pagesTouched,
    rssMiB: rssOrNull(),
    faultsServed: uffd ? stats.uffdPagesCopied + stats.uffdPagesZeroed : null,
    pagesCopied: uffd ? stats.uffdPagesCopied : null,
    pagesZeroed: uffd ? stats.uffdPagesZeroed : null,
    guardFaults: uffd ? stats.uffdGuardFaults : null,
    prefetchedBytes: uffd ? stats.uffdPrefetchedBytes : null,
    instantiations: stats.instantiations,
  };
}

function rssOrNull(): number | null {
  const rss = rssMiB();
  return rss === null ? null : round(rss, 1);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function group(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function plural(n: number, word: string, suffix = "s"): string {
  return `${group(n)} ${word}${n === 1 ? "" : suffix}`;
}

function describeModule(m: ModuleSummary): string {
  const parts: string[] = [];
  for (const mem of m.memories) {
    parts.push(
      `memory of ${plural(mem.min, "page")}${mem.max === null ? "" : ` (max ${mem.max})`}`,
    );
  }
  if (m.memories.length === 0) parts.push("no memory");
  for (const t of m.tables) parts.push(`table of ${plural(t.min, "element")}`);
  parts.push(
    m.dataSegments === 0
      ? "no data segments"
      : `${plural(m.dataBytes, "byte")} of data in ${plural(m.dataSegments, "segment")}`,
  );
  const imports = Object.entries(m.imports).filter(([, n]) => n > 0);
  parts.push(
    imports.length === 0
      ? "no imports"
      : `imports: ${imports.map(([kind, n]) => plural(n, kind)).join(", ")}`,
  );
  return parts.join("; ");
}

function formatFit(fit: FitReport): string[] {
  if (fit.fits) return ["fits DEFAULT_MODULE_LIMITS"];
  const lines = [`does not fit DEFAULT_MODULE_LIMITS: ${fit.message}`];
  lines.push("the demo raises, for its pooling engines, just enough:");
  for (const b of fit.broken) {
    lines.push(`  moduleLimits.${b.limit}: ${group(b.default)} -> ${group(b.needed)}`);
  }
  return lines;
}

function isResult(row: StrategyResult | SkippedStrategy): row is StrategyResult {
  return !("skipped" in row);
}

function formatTable(report: DemoReport): string[] {
  const results = report.results.filter(isResult);
  const onDemand = results.find((r) => r.strategy === "on-demand");
  const header = [
    "strategy",
    "µs/cycle",
    "vs on-demand",
    "pages touched",
    "RSS after",
    "faults served",
    "guard faults",
    "instantiations",
  ];
  const rows = results.map((r) => [
    r.strategy,
    r.usPerCycleMedian.toFixed(2),
    onDemand === undefined
      ? "-"
      : `${(r.usPerCycleMedian / onDemand.usPerCycleMedian).toFixed(2)}×`,
    group(r.pagesTouched),
    r.rssMiB === null ? "-" : `${r.rssMiB.toFixed(1)} MiB`,
    r.faultsServed === null ? "-" : group(r.faultsServed),
    r.guardFaults === null ? "-" : group(r.guardFaults),
    group(r.instantiations),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
      .trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const row of rows) out.push(line(row));
  for (const s of report.results) {
    if (!isResult(s)) out.push(`${s.strategy}: skipped: ${s.skipped}`);
  }
  const batches = Math.ceil(report.cycles / report.batchSize);
  out.push("");
  out.push(
    `µs/cycle: median over ${plural(batches, "batch", "es")} of the mean time of one cycle: ` +
      "instantiate, read one byte",
  );
  out.push(
    "  of every wasm page of the initial memory, dispose. vs on-demand: below 1× is faster.",
  );
  out.push(
    "pages touched: wasm pages read, all cycles. RSS after: VmRSS after the cycles, engine open.",
  );
  const uffd = results.find((r) => r.faultsServed !== null);
  if (uffd !== undefined) {
    out.push(
      `faults served (uffd): ${group(uffd.pagesCopied ?? 0)} wasm pages copied from the ` +
        `module's image, ${group(uffd.pagesZeroed ?? 0)} zero-filled; ` +
        `${
          group(Math.round((uffd.prefetchedBytes ?? 0) / 1024))
        } KiB prefetched at instantiation ` +
        "from the module's working set.",
    );
  }
  return out;
}

/** What the demo says before it measures: the runtime, the module, its fit. */
function formatHead(report: DemoReport): string[] {
  const m = report.module;
  const source = m.source === "embedded"
    ? `embedded default (${DEMO_MODULE_DESCRIPTION})`
    : m.source;
  return [
    `wasmpool demo: ${report.runtime}, ${plural(report.cycles, "cycle")} per strategy, ` +
    `pooling with ${report.poolSlots} slots`,
    `module: ${source}, ${plural(m.bytes, "byte")}`,
    `  ${describeModule(m)}`,
    ...formatFit(report.fit).map((l) => `  ${l}`),
    "",
  ];
}

function readModule(path: string): Uint8Array {
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

function demo(options: Options): DemoReport {
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
  const module = summarize(source, bytes, parsed);
  const head: DemoReport = {
    runtime: runtimeName(),
    cycles: options.cycles,
    batchSize: batchSizeFor(options.cycles),
    poolSlots: DEMO_POOL_SLOTS,
    module,
    fit,
    results: [],
  };
  // The module report comes first, before the measuring.
  if (!options.json) console.log(formatHead(head).join("\n"));
  const imports = stubImports(parsed);
  const strategies: [string, () => InstanceAllocationStrategy][] = [
    ["pooling (mprotect)", () => pooling(fit.raised, false)],
    ["pooling (uffd)", () => pooling(fit.raised, true)],
    ["on-demand", () => InstanceAllocationStrategy.onDemand()],
  ];
  const results = strategies.map(([label, strategy]) =>
    runStrategy(label, strategy, bytes, imports, options.cycles)
  );
  return { ...head, results };
}

/**
 * Runs the demo with command-line arguments and returns the exit status: 0 on success, 1 when
 * the module cannot be read, is malformed or cannot be instantiated, 2 for a usage error or
 * imports the demo cannot provide.
 *
 * @param args The arguments after the program name.
 */
export function main(args: readonly string[]): number {
  let options: Options;
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
    else console.log(formatTable(report).join("\n"));
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

if (import.meta.main) {
  process.exitCode = main(process.argv.slice(2));
}
