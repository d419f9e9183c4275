/**
 * The demo's text output: the head (runtime, module, fit, the call) printed before measuring,
 * and the two tables printed after: instances that run beside the runtime's own, and the
 * allocator alone.
 *
 * @module
 */

import { DEMO_MODULE_DESCRIPTION } from "../demo_module.ts";
import type { FitReport } from "./fit.ts";
import { BASELINE, type StrategyResult } from "./measure.ts";
import { type DemoReport, isResult } from "./report.ts";
import type { ModuleSummary } from "./workload.ts";

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
  if (m.start) parts.push("a start function");
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

/** What a running cycle does, in words: `instantiate, sum(), read ..., dispose`. */
function runningCycle(report: DemoReport, instantiate: string, dispose: string): string {
  const steps = [instantiate];
  if (report.call.name !== null) steps.push(`${report.call.name}()`);
  if (report.memoryExports.length > 0) {
    const buffers = report.memoryExports.map((name) => `exports.${name}.buffer`).join(", ");
    steps.push(`read each wasm page of ${buffers}`);
  }
  if (dispose !== "") steps.push(dispose);
  return steps.join(" + ");
}

/** What the demo says before it measures: the runtime, the module, its fit, the call. */
export function formatHead(report: DemoReport): string[] {
  const m = report.module;
  const source = m.source === "embedded"
    ? `embedded default (${DEMO_MODULE_DESCRIPTION})`
    : m.source;
  const call = report.call;
  return [
    `wasmpool demo: ${report.runtime}, ${plural(report.cycles, "cycle")} per row ` +
    `(or ${report.secondsPerRow} s), pooling with ${report.poolSlots} slots`,
    `module: ${source}, ${plural(m.bytes, "byte")}`,
    `  ${describeModule(m)}`,
    ...formatFit(report.fit).map((l) => `  ${l}`),
    call.name !== null
      ? `  each running cycle calls ${call.name}(), which returns ${call.result} on the ` +
        "runtime's own instance"
      : `  each running cycle calls no function: ${call.none}`,
    "",
  ];
}

/** Lays out a table: the first column left-aligned, the others right-aligned. */
function layout(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
}

/** `value` over the base row's median: two decimals, or two significant digits below 0.1. */
function ratio(value: number, base: StrategyResult | undefined): string {
  if (base === undefined) return "-";
  const r = value / base.usPerCycleMedian;
  return `${r >= 0.1 || r === 0 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

function mib(value: number | null): string {
  return value === null ? "-" : `${value.toFixed(1)} MiB`;
}

function count(value: number | null): string {
  return value === null ? "-" : group(value);
}

function runTable(report: DemoReport): string[] {
  const rows = report.results.filter((r) => r.cycle === "run");
  const measured = rows.filter(isResult);
  const baseline = measured.find((r) => r.strategy === BASELINE);
  const out = [
    `instances that run: ${runningCycle(report, "engine.instantiate", "dispose")}`,
  ];
  if (measured.length > 0) {
    out.push(...layout(
      [
        "strategy",
        "µs/cycle",
        "vs baseline",
        "pages read",
        "memories made",
        "recycled",
        "RSS after",
        "instantiations",
      ],
      measured.map((r) => [
        r.strategy === BASELINE ? `${BASELINE} (baseline)` : r.strategy,
        r.usPerCycleMedian.toFixed(2),
        ratio(r.usPerCycleMedian, baseline),
        group(r.pagesTouched),
        count(r.memoriesMade),
        count(r.recycled),
        mib(r.rssMiB),
        group(r.instantiations),
      ]),
    ));
  }
  for (const s of rows) if (!isResult(s)) out.push(`${s.strategy}: skipped: ${s.skipped}`);
  return out;
}

function allocateTable(report: DemoReport): string[] {
  const rows = report.results.filter((r) => r.cycle === "allocate");
  const measured = rows.filter(isResult);
  const onDemand = measured.find((r) => r.strategy === "on-demand");
  const out = [
    "the allocator alone (nothing runs): engine.allocate + read each wasm page of " +
    "instance.memories + dispose",
  ];
  if (measured.length > 0) {
    out.push(...layout(
      [
        "strategy",
        "µs/cycle",
        "vs on-demand",
        "pages read",
        "RSS after",
        "faults served",
        "guard faults",
        "instantiations",
      ],
      measured.map((r) => [
        r.strategy,
        r.usPerCycleMedian.toFixed(2),
        ratio(r.usPerCycleMedian, onDemand),
        group(r.pagesTouched),
        mib(r.rssMiB),
        count(r.faultsServed),
        count(r.guardFaults),
        group(r.instantiations),
      ]),
    ));
  }
  for (const s of rows) if (!isResult(s)) out.push(`${s.strategy}: skipped: ${s.skipped}`);
  return out;
}

/** The tables and what their columns mean. */
export function formatTables(report: DemoReport): string[] {
  const out = [...runTable(report), "", ...allocateTable(report), ""];
  out.push(
    `µs/cycle: median over batches of ${report.batchSize} of the mean time of one cycle. ` +
      "vs baseline, vs on-demand: below 1× is faster.",
  );
  const measured = report.results.filter(isResult);
  if (measured.some((r) => r.cycles < report.cycles)) {
    out.push(
      `instantiations: fewer than ${group(report.cycles)} where the row ran out of its ` +
        `${report.secondsPerRow} s.`,
    );
  }
  out.push(
    `baseline: ${runningCycle(report, "new WebAssembly.Instance", "")} (no dispose: the ` +
      "runtime collects it).",
  );
  out.push(
    "memories made: WebAssembly.Memory objects made in all cycles (pooling reuses them). " +
      "pages read: all cycles.",
  );
  const pooledRun = measured.find((r) => r.recycled !== null);
  if (pooledRun !== undefined) {
    out.push(
      "recycled: instantiations served by an instance reset in place after its last tenant" +
        (pooledRun.notRecyclable === null
          ? "."
          : ` (none: the module is not recyclable, ${pooledRun.notRecyclable}).`),
    );
  }
  out.push("RSS after: VmRSS after the row's cycles, its engine open.");
  const uffd = measured.find((r) => r.faultsServed !== null);
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
