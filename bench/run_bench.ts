/**
 * Running instances (issue 9's goals), in one run per runtime:
 *
 * - instantiate + one call + dispose, through wasmpool (pooling and on demand) against the
 *   runtime's own `new WebAssembly.Instance` + the same call, for the small module and the
 *   64 KiB and 5 MiB image modules of bench/image_modules.ts (`read()` reads offset 0), and
 *   Wasmtime 50's pooling + copy-on-write cycle (store, instantiate_pre, drop: no call) on the
 *   same bytes, where its library is installed;
 * - one call of a trivial export: the runtime's own instance against a wasmpool instance.
 *
 * Prints mitata's table and writes `bench/results/run-<runtime>.json`.
 *
 * @module
 */

import {
  bench,
  do_not_optimize,
  group,
  run,
  summary,
} from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { image5MiBModuleBytes, image64KiBModuleBytes } from "./image_modules.ts";
import { smallModuleBytes } from "./small_module.ts";
import { openWasmtime, WasmtimeEngine } from "./wasmtime/mod.ts";

type Read = () => number;

const pooling = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
));
const onDemand = new Engine();
const wasmtimeLib = await openWasmtime();
const wasmtime = wasmtimeLib === null ? null : new WasmtimeEngine(wasmtimeLib, {
  allocation: "pooling",
  memoryInitCow: true,
  poolSize: 100,
});

const modules: [string, Uint8Array<ArrayBuffer>][] = [
  ["small module", smallModuleBytes()],
  ["64 KiB image (memory 80 96)", image64KiBModuleBytes()],
  ["5 MiB image (80 segments, memory 80 96)", image5MiBModuleBytes()],
];

for (const [name, bytes] of modules) {
  const plain = new WebAssembly.Module(bytes);
  const pooled = new Module(pooling, bytes);
  const own = new Module(onDemand, bytes);
  const wasmtimeCycle = wasmtime?.instantiatePre(bytes).cycle ?? null;
  summary(() => {
    group(`instantiate + call + dispose, ${name}`, () => {
      bench("WebAssembly.Instance + call", () => {
        const instance = new WebAssembly.Instance(plain);
        do_not_optimize((instance.exports.read as Read)());
      }).baseline(true);
      bench("wasmpool pooling", () => {
        const instance = pooling.instantiate(pooled);
        do_not_optimize((instance.exports.read as Read)());
        instance.dispose();
      });
      bench("wasmpool on-demand", () => {
        const instance = onDemand.instantiate(own);
        do_not_optimize((instance.exports.read as Read)());
        instance.dispose();
      });
      if (wasmtimeCycle !== null) bench("Wasmtime pooling + CoW (no call)", wasmtimeCycle);
    });
  });
}

const small = smallModuleBytes();
const plainRead = new WebAssembly.Instance(new WebAssembly.Module(small)).exports.read as Read;
const running = pooling.instantiate(new Module(pooling, small));
const pooledRead = running.exports.read as Read;

summary(() => {
  group("one call of a trivial export", () => {
    bench("plain instance", () => do_not_optimize(plainRead())).baseline(true);
    bench("wasmpool instance (pooling)", () => do_not_optimize(pooledRead()));
  });
});

writeResults(`run-${RUNTIME}`, await run({ format: "mitata" }));
running.dispose();
wasmtime?.close();
pooling.close();
onDemand.close();
