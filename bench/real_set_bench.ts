/**
 * The real set (issue 16's goal): tiktoken, sql.js, @swc/wasm, brotli-wasm and
 * quickjs-emscripten, each driven by its own unchanged glue (tests/fixtures/real_set/). Per
 * module, one tenant (instantiate, the module's work through its glue, free, dispose) on the
 * runtime's own `new WebAssembly.Instance` (the baseline) against one on a wasmpool pooling
 * engine with recycling; and over the measured loop, the share of wasmpool's tenants served by
 * a recycled instance (`stats().warmHits` over `stats().instantiations`). Before timing, each
 * module's wasmpool outputs are compared with the plain ones for a few inputs.
 *
 * Goals: ≥ 90% recycled, wasmpool's tenant ≥ 1.3× faster than plain in Deno and ≥ 3× in Bun,
 * equal outputs. Prints mitata's table and one JSON line, and writes
 * `bench/results/real-set-<runtime>.json` (the rows, and `realSet`: one entry per module).
 *
 * `REAL_SET_MODULES=tiktoken,brotli` runs only the modules whose names contain one of the
 * comma-separated words (a shorter run; the results file then holds only those).
 *
 * @module
 */

import { bench, do_not_optimize, group, run } from "../.tools/node_modules/mitata/src/main.mjs";
import process from "node:process";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { type Engine, type EngineStats, Module } from "../mod.ts";
import {
  moduleBytes,
  packageVersion,
  plainTenant,
  pooledTenant,
  type RealSetDriver,
  realSetDrivers,
  realSetEngine,
  sameOutput,
} from "../tests/fixtures/real_set/mod.ts";

const SEEDS = [0, 1, 2, 3, 5, 8, 13, 19];
const PLAIN = "plain WebAssembly.Instance + glue";
const POOLED = "wasmpool pooling, recycled + glue";

interface Entry {
  readonly driver: RealSetDriver;
  readonly engine: Engine;
  readonly module: Module;
  readonly outputsEqual: boolean;
  before: EngineStats | null;
}

const only = (process.env.REAL_SET_MODULES ?? "").split(",").filter((w) => w !== "");
const drivers = realSetDrivers().filter((d) =>
  only.length === 0 || only.some((w) => d.name.includes(w))
);

const entries: Entry[] = [];
for (const driver of drivers) {
  await driver.load();
  const bytes = moduleBytes(driver);
  const compiled = new WebAssembly.Module(bytes);
  const engine = realSetEngine();
  const module = new Module(engine, bytes);
  let outputsEqual = true;
  for (const seed of SEEDS) {
    const plain = await plainTenant(driver, compiled, seed);
    const pooled = await pooledTenant(driver, engine, module, seed);
    if (!sameOutput(plain, pooled)) {
      outputsEqual = false;
      console.error(`${driver.name}: seed ${seed}: wasmpool's output differs from plain`);
    }
  }
  const entry: Entry = { driver, engine, module, outputsEqual, before: null };
  entries.push(entry);
  let plainSeed = 0;
  let pooledSeed = 0;
  group(`real set: ${driver.name}`, () => {
    bench(PLAIN, async () => {
      do_not_optimize(await plainTenant(driver, compiled, SEEDS[plainSeed++ % SEEDS.length]));
    }).baseline(true);
    bench(POOLED, async () => {
      // The engine's counters from its first measured tenant on (mitata's warm-up included).
      entry.before ??= engine.stats();
      do_not_optimize(
        await pooledTenant(driver, engine, module, SEEDS[pooledSeed++ % SEEDS.length]),
      );
    });
  });
}

const result = await run({ format: "mitata" });

function median(groupName: string, name: string): number | null {
  const index = result.layout.findIndex((g: { name: string | null }) => g.name === groupName);
  const row = result.benchmarks.find((b: { group: number; alias: string }) =>
    b.group === index && b.alias === name
  );
  return row?.runs[0]?.stats?.p50 ?? null;
}

const realSet = entries.map(({ driver, engine, module, outputsEqual, before }) => {
  const after = engine.stats();
  const tenants = after.instantiations - (before?.instantiations ?? 0);
  const warmHits = after.warmHits - (before?.warmHits ?? 0);
  const plainNs = median(`real set: ${driver.name}`, PLAIN);
  const wasmpoolNs = median(`real set: ${driver.name}`, POOLED);
  return {
    module: driver.name,
    package: `${driver.package}@${packageVersion(driver.package)}`,
    glue: driver.glue,
    work: driver.work,
    plainNs,
    wasmpoolNs,
    speedup: plainNs !== null && wasmpoolNs !== null ? plainNs / wasmpoolNs : null,
    tenants,
    warmHits,
    recycledShare: tenants === 0 ? 0 : warmHits / tenants,
    recycleFallbacks: after.recycleFallbacks - (before?.recycleFallbacks ?? 0),
    notRecyclable: module.notRecyclable,
    outputsEqual,
  };
});

writeResults(`real-set-${RUNTIME}`, result, { realSet });
console.log(JSON.stringify({
  runtime: RUNTIME,
  realSet: realSet.map((r) => ({
    module: r.module,
    speedup: r.speedup === null ? null : Number(r.speedup.toFixed(2)),
    recycled: `${r.warmHits}/${r.tenants}`,
    outputsEqual: r.outputsEqual,
    notRecyclable: r.notRecyclable,
  })),
}));
for (const { engine } of entries) engine.close();
