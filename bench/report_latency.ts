/**
 * The README table for `bench/results/latency-<runtime>.json` (bench/deadline_bench.ts): how
 * long after its deadline a guest spinning in a loop is stopped, in ticks.
 *
 * @module
 */

import { loadRuntimeFiles } from "./report_files.ts";

interface LatencyFile {
  readonly runtime: string;
  readonly tickMs: number;
  readonly deadlineMs: number;
  readonly trials: number;
  readonly lateMs: {
    readonly min: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
  };
}

function isLatencyFile(value: unknown): value is LatencyFile {
  const v = value as Partial<LatencyFile> | null;
  return typeof v === "object" && v !== null && typeof v.runtime === "string" &&
    typeof v.tickMs === "number" && typeof v.lateMs === "object";
}

/** Reads every `latency-*.json` in `dir`; files of another shape are left out. */
export function loadLatency(dir: string): Promise<LatencyFile[]> {
  return loadRuntimeFiles(dir, "latency", (json) => isLatencyFile(json) ? json : null);
}

function ticks(ms: number, tickMs: number): string {
  return `${(ms / tickMs).toFixed(2)} (${ms.toFixed(2)} ms)`;
}

/** The Markdown for the latency results; empty when there are none. */
export function renderLatency(files: readonly LatencyFile[]): string {
  if (files.length === 0) return "";
  const first = files[0];
  const rows = files.map((f) => {
    const late = f.lateMs;
    const goal = late.p99 <= 2 * f.tickMs ? "pass" : "miss";
    return `| ${f.runtime} | ${f.trials} | ${ticks(late.p50, f.tickMs)} | ` +
      `${ticks(late.p90, f.tickMs)} | ${ticks(late.p99, f.tickMs)} | ` +
      `${ticks(late.max, f.tickMs)} | p99 ≤ 2 ticks: ${goal} |`;
  });
  return [
    `### From the deadline to the throw (tick ${first.tickMs} ms, deadline ${first.deadlineMs} ms)`,
    "",
    "A guest spinning in an empty loop, called with a deadline, over and over: how long after " +
    "the call's start plus its deadline the call threw DeadlineExceededError, in ticks.",
    "",
    "| runtime | calls | p50 | p90 | p99 | max | goal |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ...rows,
  ].join("\n");
}
