/**
 * Running instances: instantiate + one call + dispose of the small module, through wasmpool
 * (pooling and on demand) against the runtime's own `new WebAssembly.Instance` + the same call,
 * and a call through a guarded export against a call on the plain instance, in one run.
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
import { smallModuleBytes } from "./small_module.ts";

const bytes = smallModuleBytes();
type Read = () => number;

const pooling = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
));
const onDemand = new Engine();
const pooledModule = new Module(pooling, bytes);
const onDemandModule = new Module(onDemand, bytes);
const wasmModule = new WebAssembly.Module(bytes);

summary(() => {
  group("instantiate + call + dispose, small module", () => {
    bench("WebAssembly.Instance + call", () => {
      const instance = new WebAssembly.Instance(wasmModule);
      do_not_optimize((instance.exports.read as Read)());
    }).baseline(true);
    bench("wasmpool pooling", () => {
      const instance = pooling.instantiate(pooledModule);
      do_not_optimize((instance.exports.read as Read)());
      instance.dispose();
    });
    bench("wasmpool on-demand", () => {
      const instance = onDemand.instantiate(onDemandModule);
      do_not_optimize((instance.exports.read as Read)());
      instance.dispose();
    });
  });
});

const plainRead = new WebAssembly.Instance(wasmModule).exports.read as Read;
const guarded = pooling.instantiate(pooledModule);
const guardedRead = guarded.exports.read as Read;

summary(() => {
  group("one call of a trivial export", () => {
    bench("plain instance", () => do_not_optimize(plainRead())).baseline(true);
    bench("guarded export (pooling)", () => do_not_optimize(guardedRead()));
  });
});

writeResults(`run-${RUNTIME}`, await run({ format: "mitata" }));
guarded.dispose();
pooling.close();
onDemand.close();
