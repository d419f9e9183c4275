/**
 * Writes a mitata run as `bench/results/<name>.json` (each row with its group and whether it
 * is the group's baseline, for bench/report.ts) and prints the medians as one JSON line.
 *
 * @module
 */

import { mkdirSync, writeFileSync } from "node:fs";

/** The runtime running the bench. */
export const RUNTIME: "deno" | "bun" = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
  ? "bun"
  : "deno";

/** The parts of mitata's `run()` result used here. */
export interface MitataRun {
  readonly layout: readonly { readonly name: string | null }[];
  readonly benchmarks: readonly {
    readonly alias: string;
    readonly group: number;
    readonly baseline: boolean;
    readonly runs: readonly { readonly stats?: { readonly p50?: number } }[];
  }[];
}

/**
 * Writes `result` to `bench/results/<name>.json` and prints its medians, keyed by bench name
 * (`<group> / <name>` for a name that more than one group uses).
 *
 * @param name The file's name, without `.json`.
 * @param result mitata's run.
 * @param extra More top-level fields for the file (a bench's own figures), never `runtime` or
 *   `benchmarks`.
 */
export function writeResults(
  name: string,
  result: MitataRun,
  extra: Readonly<Record<string, unknown>> = {},
): void {
  const rows = result.benchmarks.flatMap((b) =>
    b.runs.map((r) => ({
      name: b.alias,
      group: result.layout[b.group]?.name ?? null,
      baseline: b.baseline,
      stats: r.stats,
    }))
  );
  const directory = new URL("./results/", import.meta.url);
  mkdirSync(directory, { recursive: true });
  writeFileSync(
    new URL(`${name}.json`, directory),
    JSON.stringify({ ...extra, runtime: RUNTIME, benchmarks: rows }, null, 2),
  );
  const uses = new Map<string, number>();
  for (const r of rows) uses.set(r.name, (uses.get(r.name) ?? 0) + 1);
  const key = (r: (typeof rows)[number]): string =>
    uses.get(r.name)! > 1 && r.group !== null ? `${r.group} / ${r.name}` : r.name;
  console.log(JSON.stringify({
    runtime: RUNTIME,
    medians_ns: Object.fromEntries(rows.map((r) => [key(r), r.stats?.p50 ?? null])),
  }));
}
