/**
 * 10,000 live instances: for pooling (mprotect), pooling (uffd) and on-demand, instantiate
 * 10,000 instances of a small module (1 page memory with a 1 KiB data segment, a 10-entry
 * table), keep them alive, touch one byte of each memory, then dispose them all. Measures the
 * time per instantiation, per first touch and per disposal, the RSS (`VmRSS` of
 * `/proc/self/status`) and the number of mappings (lines of `/proc/self/maps`) along the way,
 * and reports against two goals: at most 2.5 mappings per live instance in mprotect mode, and a
 * mapping count that does not depend on the number of live instances in uffd mode.
 *
 * A one-shot scenario, not a mitata benchmark. Runs under `deno run -A bench/live_bench.ts`
 * and `bun bench/live_bench.ts`; prints a table and JSON, and writes
 * `bench/results/live-<runtime>.json`.
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
import { RUNTIME as runtime } from "./mitata_results.ts";
import { SMALL_MODULE_DATA_BYTE, smallModuleBytes } from "./small_module.ts";

/** Live instances per scenario. */
export const INSTANCES = 10_000;
const MEMORY_PAGES = 16;
/** The goal for mprotect mode: mappings added per live instance, at most. */
export const MPROTECT_GOAL_MAPPINGS_PER_INSTANCE = 2.5;
/** The byte touched in each memory: the last of the first wasm page (not in the data segment). */
const TOUCHED_BYTE = WASM_PAGE_BYTES - 1;
const DATA_BYTE = SMALL_MODULE_DATA_BYTE;

/** The allocation modes measured. */
export type Mode = "pooling (mprotect)" | "pooling (uffd)" | "on-demand";

/** The number of mappings at each point of a scenario. */
export interface MappingCounts {
  /** Before the engine was created. */
  beforeEngine: number;
  /** Engine and module created, no instance live. */
  live0: number;
  /** Half the instances live. */
  live5000: number;
  /** All instances live (and touched). */
  live10000: number;
  /** All instances disposed, engine still open. */
  afterDispose: number;
  /** Engine closed. */
  afterClose: number;
}

/** One scenario's measurements. */
export interface LiveResult {
  mode: Mode;
  /** Set when the scenario could not run (e.g. userfaultfd unavailable). */
  skipped?: string;
  instances: number;
  /** Engine creation (pooling: the whole reservation, and in uffd mode every slot's registration). */
  engineCreateMs: number;
  /** `Engine#close()` with no instance live. */
  engineCloseMs: number;
  instantiate: { totalMs: number; perInstanceUs: number };
  touch: { totalMs: number; perInstanceUs: number };
  dispose: { totalMs: number; perInstanceUs: number };
  rssKiB: { beforeEngine: number; live0: number; live10000: number; afterDispose: number };
  /** RSS added per live instance (touched), in KiB. */
  rssPerInstanceKiB: number;
  /** Every line of /proc/self/maps: the runtime's own mappings included. */
  mappings: MappingCounts;
  /**
   * Only the mappings that overlap an instance memory's reservation (pooling: the memory pool,
   * from the lowest to the highest slot used; on-demand: each memory's own reservation). Free
   * of the runtime's heap noise.
   */
  memoryMappings: MappingCounts;
  /** (live10000 - live0) / instances, of all mappings and of the memory mappings. */
  mappingsPerLiveInstance: number;
  memoryMappingsPerLiveInstance: number;
  goal?: { text: string; pass: boolean };
}

function engineFor(mode: Mode): Engine {
  if (mode === "on-demand") return new Engine();
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    uffd: mode === "pooling (uffd)",
    moduleLimits: { memoryPages: MEMORY_PAGES },
    instanceLimits: { count: INSTANCES, memoryReservationSize: MEMORY_PAGES * WASM_PAGE_BYTES },
  })));
}

/** `VmRSS` of this process, in KiB. */
export function rssKiB(): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  if (match === null) throw new Error("no VmRSS in /proc/self/status");
  return Number(match[1]);
}

/** The text of /proc/self/maps, kept to be counted once the memories' addresses are known. */
function mapsSnapshot(): string {
  const text = readFileSync("/proc/self/maps", "utf8");
  if (text.length === 0) throw new Error("/proc/self/maps read as empty");
  return text;
}

function countLines(maps: string): number {
  let lines = 0;
  for (let at = maps.indexOf("\n"); at !== -1; at = maps.indexOf("\n", at + 1)) lines++;
  return lines;
}

/** A half-open address range. */
interface Range {
  start: bigint;
  end: bigint;
}

/** Merges overlapping or touching ranges, sorted by start. */
function mergeRanges(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const merged: Range[] = [];
  for (const r of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && r.start <= last.end) {
      if (r.end > last.end) last.end = r.end;
    } else {
      merged.push({ start: r.start, end: r.end });
    }
  }
  return merged;
}

/** The mappings of a snapshot that overlap any of the (merged, sorted) ranges. */
function countOverlapping(maps: string, ranges: Range[]): number {
  if (ranges.length === 0) return 0;
  let count = 0;
  for (const line of maps.split("\n")) {
    const dash = line.indexOf("-");
    const space = line.indexOf(" ");
    if (dash <= 0 || space <= dash) continue;
    const start = BigInt("0x" + line.slice(0, dash));
    const end = BigInt("0x" + line.slice(dash + 1, space));
    // The first range whose end is past this mapping's start.
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ranges[mid].end <= start) lo = mid + 1;
      else hi = mid;
    }
    if (lo < ranges.length && ranges[lo].start < end) count++;
  }
  return count;
}

interface Snapshots {
  beforeEngine: string;
  live0: string;
  live5000: string;
  live10000: string;
  afterDispose: string;
  afterClose: string;
}

function counts(snapshots: Snapshots, count: (maps: string) => number): MappingCounts {
  return {
    beforeEngine: count(snapshots.beforeEngine),
    live0: count(snapshots.live0),
    live5000: count(snapshots.live5000),
    live10000: count(snapshots.live10000),
    afterDispose: count(snapshots.afterDispose),
    afterClose: count(snapshots.afterClose),
  };
}

function timing(totalMs: number): { totalMs: number; perInstanceUs: number } {
  return { totalMs, perInstanceUs: (totalMs * 1000) / INSTANCES };
}

/** Runs one scenario; the engine is closed before it returns. */
export function runScenario(
  mode: Mode,
  bytes: Uint8Array,
): LiveResult | { mode: Mode; skipped: string } {
  const beforeEngineMaps = mapsSnapshot();
  const beforeEngineRss = rssKiB();
  let engine: Engine;
  const createStart = performance.now();
  try {
    engine = engineFor(mode);
  } catch (error) {
    if (mode !== "pooling (uffd)") throw error;
    return { mode, skipped: `engine creation failed: ${(error as Error).message}` };
  }
  const engineCreateMs = performance.now() - createStart;
  try {
    const module = new Module(engine, bytes);
    const live0Maps = mapsSnapshot();
    const live0Rss = rssKiB();

    const instances: InstanceHandle[] = [];
    const half = INSTANCES / 2;
    let start = performance.now();
    for (let i = 0; i < half; i++) instances.push(engine.allocate(module));
    let instantiateMs = performance.now() - start;
    const live5000Maps = mapsSnapshot();
    start = performance.now();
    for (let i = half; i < INSTANCES; i++) instances.push(engine.allocate(module));
    instantiateMs += performance.now() - start;

    start = performance.now();
    let wrong = 0;
    for (const instance of instances) {
      const view = new Uint8Array(instance.memories[0].buffer);
      if (view[0] !== DATA_BYTE || view[TOUCHED_BYTE] !== 0) wrong++;
      view[TOUCHED_BYTE] = 1;
    }
    const touchMs = performance.now() - start;
    if (wrong !== 0) throw new Error(`${mode}: ${wrong} memories did not read as initialized`);
    const live10000Maps = mapsSnapshot();
    const live10000Rss = rssKiB();

    // The memories' reservations, for the memory-only mapping counts.
    const reservation = BigInt(engine.stats().memorySlotBytes);
    const addresses = instances.map((instance) => instance.memories[0].address);
    let ranges: Range[];
    if (mode === "on-demand") {
      ranges = mergeRanges(addresses.map((a) => ({ start: a, end: a + reservation })));
    } else {
      const stats = engine.stats();
      let low = addresses[0];
      for (const a of addresses) if (a < low) low = a;
      // Every slot is used with INSTANCES live: the lowest is the pool's base.
      ranges = [{ start: low, end: low + BigInt(stats.memoryPoolBytes) }];
    }

    start = performance.now();
    for (const instance of instances) instance.dispose();
    const disposeMs = performance.now() - start;
    instances.length = 0;
    const afterDisposeMaps = mapsSnapshot();
    const afterDisposeRss = rssKiB();
    start = performance.now();
    engine.close();
    const engineCloseMs = performance.now() - start;
    const afterCloseMaps = mapsSnapshot();

    const snapshots: Snapshots = {
      beforeEngine: beforeEngineMaps,
      live0: live0Maps,
      live5000: live5000Maps,
      live10000: live10000Maps,
      afterDispose: afterDisposeMaps,
      afterClose: afterCloseMaps,
    };
    const mappings = counts(snapshots, countLines);
    const memoryMappings = counts(snapshots, (maps) => countOverlapping(maps, ranges));
    const result: LiveResult = {
      mode,
      instances: INSTANCES,
      engineCreateMs,
      engineCloseMs,
      instantiate: timing(instantiateMs),
      touch: timing(touchMs),
      dispose: timing(disposeMs),
      rssKiB: {
        beforeEngine: beforeEngineRss,
        live0: live0Rss,
        live10000: live10000Rss,
        afterDispose: afterDisposeRss,
      },
      rssPerInstanceKiB: (live10000Rss - live0Rss) / INSTANCES,
      mappings,
      memoryMappings,
      mappingsPerLiveInstance: (mappings.live10000 - mappings.live0) / INSTANCES,
      memoryMappingsPerLiveInstance: (memoryMappings.live10000 - memoryMappings.live0) /
        INSTANCES,
    };
    result.goal = goalOf(result);
    return result;
  } finally {
    engine.close();
  }
}

/**
 * mprotect: at most 2.5 mappings added per live instance (all mappings). uffd: the memory
 * mappings are the same with 0, 5,000 and 10,000 live, and all mappings grow by less than
 * 0.01 per live instance (what remains is the runtime's own heap).
 */
function goalOf(r: LiveResult): { text: string; pass: boolean } | undefined {
  if (r.mode === "pooling (mprotect)") {
    return {
      text: `<= ${MPROTECT_GOAL_MAPPINGS_PER_INSTANCE} mappings per live instance`,
      pass: r.mappingsPerLiveInstance <= MPROTECT_GOAL_MAPPINGS_PER_INSTANCE,
    };
  }
  if (r.mode === "pooling (uffd)") {
    const m = r.memoryMappings;
    return {
      text: "mappings constant in live instances (memory mappings equal at 0/5,000/10,000; " +
        "all mappings < 0.01 per live instance)",
      pass: m.live0 === m.live5000 && m.live5000 === m.live10000 &&
        Math.abs(r.mappingsPerLiveInstance) < 0.01,
    };
  }
  return undefined;
}

function fixed(n: number, digits = 2): string {
  return n.toFixed(digits);
}

function printTable(results: (LiveResult | { mode: Mode; skipped: string })[]): void {
  console.log(`\n${INSTANCES} live instances, ${runtime}`);
  const rows: string[][] = [[
    "mode",
    "create/close ms",
    "inst µs",
    "touch µs",
    "disp µs",
    "RSS/inst KiB",
    "maps 0/5k/10k live",
    "maps/inst",
    "mem maps 0/5k/10k",
    "mem maps/inst",
    "maps disposed/closed",
    "goal",
  ]];
  for (const r of results) {
    if (!("instances" in r)) {
      rows.push([r.mode, `skipped: ${r.skipped}`]);
      continue;
    }
    const m = r.mappings;
    const mm = r.memoryMappings;
    rows.push([
      r.mode,
      `${fixed(r.engineCreateMs, 1)}/${fixed(r.engineCloseMs, 1)}`,
      fixed(r.instantiate.perInstanceUs),
      fixed(r.touch.perInstanceUs),
      fixed(r.dispose.perInstanceUs),
      fixed(r.rssPerInstanceKiB, 1),
      `${m.live0}/${m.live5000}/${m.live10000}`,
      fixed(r.mappingsPerLiveInstance, 3),
      `${mm.live0}/${mm.live5000}/${mm.live10000}`,
      fixed(r.memoryMappingsPerLiveInstance, 3),
      `${m.afterDispose}/${m.afterClose}`,
      r.goal === undefined ? "-" : `${r.goal.pass ? "pass" : "MISS"} (${r.goal.text})`,
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => (row[c] ?? "").length)));
  for (const row of rows) {
    console.log(row.map((cell, c) => cell.padEnd(c === row.length - 1 ? 0 : widths[c])).join("  "));
  }
}

if (import.meta.main) {
  const bytes = smallModuleBytes();
  const modes: Mode[] = ["pooling (mprotect)", "pooling (uffd)", "on-demand"];
  const results = modes.map((mode) => runScenario(mode, bytes));
  printTable(results);
  const json = { runtime, instances: INSTANCES, results };
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  writeFileSync(
    new URL(`./results/live-${runtime}.json`, import.meta.url),
    JSON.stringify(json, null, 2),
  );
  console.log(JSON.stringify(json));
}
