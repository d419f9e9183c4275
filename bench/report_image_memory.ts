/**
 * The README table for `bench/results/image-memory-<runtime>.json`
 * (bench/image_memory_bench.ts): memory of 1,000 live instances of the 5 MiB-image module.
 *
 * @module
 */

import { loadRuntimeFiles } from "./report_files.ts";

interface MemoryResult {
  readonly mode: string;
  readonly privateKiB: number;
  readonly imageMappingsPrivateKiB: number;
  readonly imageKiB: number;
  readonly totalKiB: number;
  readonly goalKiB: number;
  readonly pass: boolean;
  readonly pageTablesKiB: number;
  readonly copiesKiB: number;
}

interface MemoryFile {
  readonly runtime: string;
  readonly instances: number;
  readonly results: readonly MemoryResult[];
}

function isMemoryFile(value: unknown): value is MemoryFile {
  const v = value as Partial<MemoryFile> | null;
  return typeof v === "object" && v !== null && typeof v.runtime === "string" &&
    typeof v.instances === "number" && Array.isArray(v.results);
}

/** Reads every `image-memory-*.json` in `dir`; files of another shape are left out. */
export function loadImageMemory(dir: string): Promise<MemoryFile[]> {
  return loadRuntimeFiles(dir, "image-memory", (json) => isMemoryFile(json) ? json : null);
}

function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

/** The Markdown for the image-memory results; empty when there are none. */
export function renderImageMemory(files: readonly MemoryFile[]): string {
  if (files.length === 0) return "";
  const rows = files.flatMap((file) =>
    file.results.map((r) =>
      `| ${file.runtime} | ${r.mode} | ${mib(r.privateKiB)} | ${
        mib(r.imageMappingsPrivateKiB)
      } | ` +
      `${mib(r.imageKiB)} | ${mib(r.totalKiB)} | < ${mib(r.goalKiB)}: ${
        r.pass ? "pass" : "miss"
      } | ` +
      `${mib(r.pageTablesKiB)} | ${mib(r.copiesKiB)} |`
    )
  );
  return [
    `### ${files[0].instances.toLocaleString("en-US")} live instances of the 5 MiB-image ` +
    "module, each writing one page and reading the rest",
    "",
    "Private: the change of `Private_Clean + Private_Dirty` in `/proc/self/smaps_rollup` (the " +
    "runtime's heap moves it a little), and of the image mappings alone (`/proc/self/smaps`). " +
    "Total: the larger of the two plus the image, counted once; the goal is 1.1 × (1,000 " +
    "pages + the image). Page tables (`VmPTE`) are not in the goal.",
    "",
    "| runtime | strategy | private (rollup) | private (image mappings) | image | total | goal | " +
    "page tables | a copy each |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ...rows,
  ].join("\n");
}
