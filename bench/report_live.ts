/**
 * The README table for `bench/results/live-<runtime>.json` (bench/live_bench.ts): 10,000 live
 * instances per strategy, with time, RSS and mapping counts.
 *
 * @module
 */

import { loadRuntimeFiles } from "./report_files.ts";

interface LiveResult {
  readonly mode: string;
  readonly instantiate: { readonly perInstanceUs: number };
  readonly dispose: { readonly perInstanceUs: number };
  readonly rssPerInstanceKiB: number;
  readonly mappingsPerLiveInstance: number;
  readonly memoryMappings: Readonly<Record<string, number>>;
  readonly goal?: { readonly text: string; readonly pass: boolean };
}

interface LiveFile {
  readonly runtime: string;
  readonly instances: number;
  readonly results: readonly LiveResult[];
}

function isLiveFile(value: unknown): value is LiveFile {
  const v = value as Partial<LiveFile> | null;
  return typeof v === "object" && v !== null && typeof v.runtime === "string" &&
    Array.isArray(v.results);
}

/** Reads every `live-*.json` in `dir`; files of another shape are left out. */
export function loadLive(dir: string): Promise<LiveFile[]> {
  return loadRuntimeFiles(dir, "live", (json) => isLiveFile(json) ? json : null);
}

/** The Markdown for the live-instances results; empty when there are none. */
export function renderLive(files: readonly LiveFile[]): string {
  if (files.length === 0) return "";
  const rows = files.flatMap((file) =>
    file.results.map((r) => {
      const memory = r.memoryMappings;
      const counts = ["live0", "live5000", "live10000"].map((k) => memory[k] ?? "-").join(" / ");
      return `| ${file.runtime} | ${r.mode} | ${r.instantiate.perInstanceUs.toFixed(1)} µs | ` +
        `${r.dispose.perInstanceUs.toFixed(1)} µs | ${r.rssPerInstanceKiB.toFixed(1)} KiB | ` +
        `${r.mappingsPerLiveInstance.toFixed(2)} | ${counts} | ` +
        `${r.goal ? `${r.goal.pass ? "pass" : "miss"} (${r.goal.text})` : "-"} |`;
    })
  );
  return [
    `### ${files[0].instances.toLocaleString("en-US")} live instances`,
    "",
    "| runtime | strategy | instantiate | dispose | RSS per instance | mappings per instance | " +
    "memory mappings at 0 / 5k / 10k live | goal |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ...rows,
  ].join("\n");
}
