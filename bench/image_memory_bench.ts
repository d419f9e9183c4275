/**
 * The memory goal of copy-on-write images: 1,000 live instances of the 5 MiB-image module
 * (`image_modules.ts`), each of which writes one wasm page and reads the rest, must add less
 * than 1.1 × (1,000 pages + one 5 MiB image) of memory: their private pages plus the image's
 * memfd counted once, not 1,000 × 5 MiB. Measured with `/proc/self/smaps_rollup` (the change
 * of `Private_Clean + Private_Dirty` across the scenario, after a garbage collection, so the
 * runtime's own heap moves it a little either way) and the image's size
 * (`stats().imageBytes`). Beside it: the private pages of the image mappings alone (from
 * `/proc/self/smaps`, free of the runtime's heap), and page tables (`VmPTE`).
 *
 * A one-shot scenario, not a mitata benchmark. Runs under `deno run -A
 * bench/image_memory_bench.ts` and `bun bench/image_memory_bench.ts`; prints a table and JSON,
 * and writes `bench/results/image-memory-<runtime>.json`.
 *
 * @module
 */

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import {
  Config,
  Engine,
  InstanceAllocationStrategy,
  type InstanceHandle,
  Module,
  WASM_PAGE_BYTES,
} from "../mod.ts";
import { image5MiBModuleBytes, IMAGE_MEMORY_PAGES } from "./image_modules.ts";
import { RUNTIME as runtime } from "./mitata_results.ts";
import { collectWhereExposed } from "../tests/fixtures/gc.ts";

/** Live instances. */
export const INSTANCES = 1000;
/** The goal's factor over (one written page per instance + one image). */
export const GOAL_FACTOR = 1.1;

const HOST_PAGE = 4096;

/** The fields of `/proc/self/smaps_rollup` used here, in KiB. */
interface Rollup {
  rss: number;
  pss: number;
  privateClean: number;
  privateDirty: number;
  sharedClean: number;
  sharedDirty: number;
}

/** Private_Clean + Private_Dirty of the mappings of module images' memfds, in KiB. */
function imagePrivateKiB(): number {
  const text = readFileSync("/proc/self/smaps", "utf8");
  let total = 0;
  let inImage = false;
  for (const line of text.split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inImage = line.includes("memfd:wasmpool-image");
    else if (inImage) {
      const match = /^Private_(?:Clean|Dirty):\s+(\d+) kB/.exec(line);
      if (match !== null) total += Number(match[1]);
    }
  }
  return total;
}

/** One strategy's measurements, in KiB. */
export interface MemoryResult {
  mode: string;
  instances: number;
  /** Bytes of the module's image (its memfd's data), in KiB: counted once. */
  imageKiB: number;
  /** Change of Private_Clean + Private_Dirty with all instances live. */
  privateKiB: number;
  /**
   * What the goal bounds: the larger of privateKiB and imageMappingsPrivateKiB (the runtime's
   * heap can shrink during the run and hide pages from the first), plus imageKiB.
   */
  totalKiB: number;
  /** GOAL_FACTOR × (instances × one wasm page + the image). */
  goalKiB: number;
  pass: boolean;
  /** Private pages of the image mappings alone (the instances' written pages). */
  imageMappingsPrivateKiB: number;
  /** Change of Rss, of Pss, of Shared_* and of VmPTE, for context. */
  rssKiB: number;
  pssKiB: number;
  sharedKiB: number;
  pageTablesKiB: number;
  /** What instances would hold with a copy of the image each. */
  copiesKiB: number;
}

function rollup(): Rollup {
  const text = readFileSync("/proc/self/smaps_rollup", "utf8");
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (match === null) throw new Error(`no ${name} in /proc/self/smaps_rollup`);
    return Number(match[1]);
  };
  return {
    rss: field("Rss"),
    pss: field("Pss"),
    privateClean: field("Private_Clean"),
    privateDirty: field("Private_Dirty"),
    sharedClean: field("Shared_Clean"),
    sharedDirty: field("Shared_Dirty"),
  };
}

function pageTablesKiB(): number {
  const match = /^VmPTE:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return match === null ? 0 : Number(match[1]);
}

function engineFor(mode: string): Engine {
  if (mode === "on-demand") return new Engine();
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    moduleLimits: { memoryPages: IMAGE_MEMORY_PAGES.max },
    instanceLimits: {
      count: INSTANCES,
      memoryReservationSize: IMAGE_MEMORY_PAGES.max * WASM_PAGE_BYTES,
    },
  })));
}

/** Runs the scenario for one strategy; the engine is closed before it returns. */
export function runScenario(mode: string, bytes: Uint8Array): MemoryResult {
  using engine = engineFor(mode);
  const module = new Module(engine, bytes);
  const imageKiB = engine.stats().imageBytes / 1024;
  collectWhereExposed();
  const before = rollup();
  const ptBefore = pageTablesKiB();
  const instances: InstanceHandle[] = [];
  let sum = 0;
  for (let i = 0; i < INSTANCES; i++) {
    const instance = engine.allocate(module);
    const view = new Uint8Array(instance.memories[0].buffer);
    const written = i % IMAGE_MEMORY_PAGES.min;
    view.fill(i & 0xff, written * WASM_PAGE_BYTES, (written + 1) * WASM_PAGE_BYTES);
    for (let at = 0; at < view.length; at += HOST_PAGE) sum += view[at];
    instances.push(instance);
  }
  collectWhereExposed();
  const after = rollup();
  const ptAfter = pageTablesKiB();
  const imageMappingsPrivateKiB = imagePrivateKiB();
  for (const instance of instances) instance.dispose();
  if (sum === 0) throw new Error("the reads were optimized away");
  const privateKiB = (after.privateClean + after.privateDirty) -
    (before.privateClean + before.privateDirty);
  const totalKiB = Math.max(privateKiB, imageMappingsPrivateKiB) + imageKiB;
  const goalKiB = GOAL_FACTOR * (INSTANCES * WASM_PAGE_BYTES / 1024 + imageKiB);
  return {
    mode,
    instances: INSTANCES,
    imageKiB,
    privateKiB,
    totalKiB,
    goalKiB,
    pass: totalKiB < goalKiB,
    imageMappingsPrivateKiB,
    rssKiB: after.rss - before.rss,
    pssKiB: after.pss - before.pss,
    sharedKiB: (after.sharedClean + after.sharedDirty) - (before.sharedClean + before.sharedDirty),
    pageTablesKiB: ptAfter - ptBefore,
    copiesKiB: INSTANCES * IMAGE_MEMORY_PAGES.min * WASM_PAGE_BYTES / 1024,
  };
}

function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

if (import.meta.main) {
  const bytes = image5MiBModuleBytes();
  const results = ["pooling (mprotect)", "on-demand"].map((mode) => runScenario(mode, bytes));
  console.log(
    `\n${INSTANCES} live instances of the 5 MiB-image module, each writing one page, ${runtime}`,
  );
  for (const r of results) {
    console.log(
      `${r.mode.padEnd(20)} private +${mib(r.privateKiB)} (smaps_rollup), ` +
        `${mib(r.imageMappingsPrivateKiB)} (image mappings); + image ${mib(r.imageKiB)} = ` +
        `${mib(r.totalKiB)} (goal < ${mib(r.goalKiB)}: ${r.pass ? "pass" : "MISS"}); ` +
        `Rss +${mib(r.rssKiB)}, Pss +${mib(r.pssKiB)}, shared +${mib(r.sharedKiB)}, ` +
        `page tables +${mib(r.pageTablesKiB)}; a copy each would be ${mib(r.copiesKiB)}`,
    );
  }
  const json = { runtime, instances: INSTANCES, results };
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  writeFileSync(
    new URL(`./results/image-memory-${runtime}.json`, import.meta.url),
    JSON.stringify(json, null, 2),
  );
  console.log(JSON.stringify(json));
}
