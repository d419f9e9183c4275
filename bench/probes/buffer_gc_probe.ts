/**
 * Why an ArrayBuffer over a large memory costs more in Bun: makes (and detaches) an
 * ArrayBuffer over 1 and over 80 pages of the same native memory, as `Memory#buffer` and
 * `dispose` do, and counts the calls during which JavaScriptCore collected (its extra-memory
 * size, `heapStats().extraMemorySize`, fell) and the slow ones. JavaScriptCore counts every
 * new ArrayBuffer's byteLength toward its next collection (`ArrayBuffer::gcSizeEstimateInBytes`
 * is `sizeof(ArrayBuffer) + byteLength()`, external memory or not): with 5 MiB buffers a
 * collection comes every few buffers, and nearly every slow call is one with a collection.
 * Bun only (`bun:jsc`).
 *
 *   bun bench/probes/buffer_gc_probe.ts
 *
 * @module
 */

import { Config, Engine, InstanceAllocationStrategy, Module, WASM_PAGE_BYTES } from "../../mod.ts";
import { engineState } from "../../src/engine_state.ts";
import { buildModule } from "../../tests/fixtures/wasm_builder.ts";
import { RUNTIME } from "../mitata_results.ts";

if (RUNTIME !== "bun") throw new Error("a Bun probe: run it with bun");
const { heapStats } = (await import(["bun", "jsc"].join(":"))) as {
  heapStats(): { extraMemorySize: number };
};

const CALLS = 2000;
/** A call slower than this is counted as slow (a plain one takes under a microsecond). */
const SLOW_MS = 0.02;

using engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 1 } }),
));
const module = new Module(engine, buildModule({ memories: [{ min: 80, max: 80, shared: false }] }));
using held = engine.allocate(module);
const address = Number(held.memories[0].address);
const lib = engineState(engine).lib;

/** What one pass over `pages` saw. */
interface Pass {
  readonly pages: number;
  readonly collections: number | null;
  readonly slow: number;
  readonly slowWithCollection: number | null;
  readonly slowMeanUs: number;
  readonly medianUs: number;
}

/**
 * `CALLS` buffers over `pages` pages, timed one by one; with `watch`, heapStats() after each
 * says whether a collection ran. heapStats() costs about a millisecond and allocates a lot, so
 * the times of a watched pass are not the bench's: the unwatched pass gives those.
 */
function pass(pages: number, watch: boolean): Pass {
  const times: number[] = [];
  let collections = 0;
  let slowWithCollection = 0;
  let previous = watch ? heapStats().extraMemorySize : 0;
  for (let i = 0; i < CALLS; i++) {
    const start = performance.now();
    lib.arrayBuffer(address, pages * WASM_PAGE_BYTES).transfer(0);
    const ms = performance.now() - start;
    times.push(ms);
    if (!watch) continue;
    const now = heapStats().extraMemorySize;
    if (now < previous) {
      collections += 1;
      if (ms > SLOW_MS) slowWithCollection += 1;
    }
    previous = now;
  }
  const slow = times.filter((ms) => ms > SLOW_MS);
  return {
    pages,
    collections: watch ? collections : null,
    slow: slow.length,
    slowWithCollection: watch ? slowWithCollection : null,
    slowMeanUs: slow.reduce((a, b) => a + b, 0) * 1000 / Math.max(slow.length, 1),
    medianUs: times.sort((a, b) => a - b)[CALLS >> 1] * 1000,
  };
}

const rows: Pass[] = [];
// The unwatched passes first: heapStats() leaves a larger heap behind, which slows collections.
for (const watch of [false, true]) for (const pages of [1, 80]) rows.push(pass(pages, watch));
for (const r of rows) {
  console.log(
    `${String(r.pages).padStart(2)} pages${r.collections === null ? "" : ", watched"}: ` +
      `median ${r.medianUs.toFixed(2)} µs; ${r.slow} of ${CALLS} calls over ${SLOW_MS * 1000} µs ` +
      `(mean ${r.slowMeanUs.toFixed(0)} µs)` +
      (r.collections === null
        ? ""
        : `; ${r.collections} collections, during ${r.slowWithCollection} of the slow calls`),
  );
}
console.log(JSON.stringify({ runtime: RUNTIME, rows }));
