/**
 * The README table for `bench/results/real-set-<runtime>.json` (bench/real_set_bench.ts): per
 * module of the real set and runtime, one tenant through the module's own glue on a plain
 * instance and on wasmpool, the speed-up, the share of tenants served by recycled instances and
 * whether the outputs were equal, against issue 16's goals.
 *
 * @module
 */

import { loadRuntimeFiles } from "./report_files.ts";

/** One module's figures in one runtime. */
export interface RealSetRow {
  /** The module's name in the real set. */
  readonly module: string;
  /** `name@version` of its npm package. */
  readonly package: string;
  /** Median plain tenant, in nanoseconds. */
  readonly plainNs: number | null;
  /** Median wasmpool tenant, in nanoseconds. */
  readonly wasmpoolNs: number | null;
  /** Wasmpool's tenants over the measured loop. */
  readonly tenants: number;
  /** Of those, the ones a recycled instance served. */
  readonly warmHits: number;
  /** Whether wasmpool's outputs equalled the plain ones. */
  readonly outputsEqual: boolean;
  /** Why the module's instances are never recycled, or `null`. */
  readonly notRecyclable: string | null;
  /** Tenants whose instance was destroyed instead of recycled (a memory grew, ...). */
  readonly recycleFallbacks?: number;
}

/** One `real-set-<runtime>.json`. */
export interface RealSetFile {
  /** `deno` or `bun`. */
  readonly runtime: string;
  /** Its modules. */
  readonly rows: readonly RealSetRow[];
}

/** The speed-up each runtime must reach (issue 16). */
const SPEEDUP_GOALS: Readonly<Record<string, number>> = { deno: 1.3, bun: 3 };
const RECYCLED_GOAL = 0.9;

function isRow(value: unknown): value is RealSetRow {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.module === "string" && typeof v.tenants === "number" &&
    typeof v.warmHits === "number" && typeof v.outputsEqual === "boolean";
}

/** Reads every `real-set-*.json` in `dir`; files of another shape are left out. */
export function loadRealSet(dir: string): Promise<RealSetFile[]> {
  const order = (runtime: string): number => ["deno", "bun"].indexOf(runtime) >>> 0;
  return loadRuntimeFiles(dir, "real-set", (json) => {
    if (typeof json !== "object" || json === null) return null;
    const { runtime, realSet } = json as Record<string, unknown>;
    if (typeof runtime !== "string" || !Array.isArray(realSet)) return null;
    return { runtime, rows: realSet.filter(isRow) };
  }, (a, b) => order(a.runtime) - order(b.runtime));
}

/** Milliseconds (or microseconds below 1 ms), three significant digits. */
function duration(ns: number): string {
  const [value, unit] = ns >= 1e6 ? [ns / 1e6, "ms"] : [ns / 1e3, "µs"];
  return `${value.toPrecision(3)} ${unit}`;
}

function why(row: RealSetRow): string {
  const fallbacks = row.recycleFallbacks ?? 0;
  const replaced = fallbacks === 0 ? "-" : `${fallbacks} tenants grew a memory or table: replaced`;
  // A module that imports its memory is recycled through engine.reserve, not instantiate:
  // its notRecyclable names why instantiate alone cannot.
  if (row.notRecyclable !== null && row.tenants > 0 && row.warmHits > 0) {
    return `recycled through engine.reserve (not through instantiate: ${row.notRecyclable}); ${replaced}`;
  }
  return row.notRecyclable ?? replaced;
}

function goals(row: RealSetRow, runtime: string): string {
  const missed: string[] = [];
  const speedup = row.plainNs !== null && row.wasmpoolNs !== null && row.wasmpoolNs > 0
    ? row.plainNs / row.wasmpoolNs
    : null;
  const speedGoal = SPEEDUP_GOALS[runtime];
  if (speedGoal !== undefined && (speedup === null || speedup < speedGoal)) {
    missed.push(`speed < ${speedGoal}×`);
  }
  if (row.tenants === 0 || row.warmHits / row.tenants < RECYCLED_GOAL) missed.push("recycled");
  if (!row.outputsEqual) missed.push("outputs");
  return missed.length === 0 ? "met" : `missed: ${missed.join(", ")}`;
}

/** The Markdown for the real set's results; empty when there are none. */
export function renderRealSet(files: readonly RealSetFile[]): string {
  if (files.length === 0) return "";
  const lines = [
    "### real set: one tenant through the module's own glue",
    "",
    "A tenant is all one request does: instantiate (plain: `new WebAssembly.Instance` of a module " +
    "compiled once; wasmpool: a pooling engine, recycling on), the module's work through its own " +
    "unchanged glue, free, dispose (`tests/fixtures/real_set/`). Speed-up: plain median over " +
    "wasmpool median, above 1× is faster. Recycled: wasmpool tenants a recycled instance served. " +
    "Goals (issue 16): speed-up ≥ 1.3× in Deno and ≥ 3× in Bun, ≥ 90% recycled, equal outputs.",
    "",
    "| module | runtime | plain | wasmpool | speed-up | recycled | outputs | goals | why not recycled |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
  ];
  for (const file of files) {
    for (const row of file.rows) {
      const time = (ns: number | null): string => ns === null ? "-" : duration(ns);
      const speedup = row.plainNs !== null && row.wasmpoolNs !== null && row.wasmpoolNs > 0
        ? `${(row.plainNs / row.wasmpoolNs).toFixed(2)}×`
        : "-";
      const share = row.tenants === 0 ? "-" : `${Math.round(100 * row.warmHits / row.tenants)}%`;
      const cells = [
        `${row.module} (${row.package})`,
        file.runtime === "deno" ? "Deno" : file.runtime === "bun" ? "Bun" : file.runtime,
        time(row.plainNs),
        time(row.wasmpoolNs),
        speedup,
        `${share} (${row.warmHits}/${row.tenants})`,
        row.outputsEqual ? "equal" : "DIFFER",
        goals(row, file.runtime),
        why(row),
      ];
      lines.push(`| ${cells.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`);
    }
  }
  return lines.join("\n");
}
