/**
 * Where a recycled tenant's call of a trivial export went in JavaScriptCore: with `K` tenants
 * alive at once (so `K` warm instances, each with its own runtime function `read`), each called
 * through its wrapper, then one tenant's `read` timed against the runtime's own function.
 * Wrappers that share one source (src/run/recycle.ts before wrappers.ts) share the profile of
 * their call of the wasm function: past a handful of functions the site is megamorphic. Measured
 * with Bun 1.4.5 on a shared machine, K = 32: the shared wrapper 130-140 ns mean, 42 ns p75
 * (K = 1: 4 ns); compiled per function (wrappers.ts), 12 ns mean, 3.4 ns p75; the runtime's
 * own function 6 ns mean, 1.8 ns p75.
 *
 *   deno run --allow-all bench/probes/call_probe.ts 32
 *   bun bench/probes/call_probe.ts 32
 *
 * @module
 */

import {
  bench,
  do_not_optimize,
  group,
  run,
  summary,
} from "../../.tools/node_modules/mitata/src/main.mjs";
import process from "node:process";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../../mod.ts";
import { smallModuleBytes } from "../small_module.ts";

type Read = () => number;

const K = Number(process.argv[2] ?? 16);
const engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: K + 1 }, recycleInstances: true }),
));
const small = smallModuleBytes();
const module = new Module(engine, small);
const raw = new WebAssembly.Instance(new WebAssembly.Module(small)).exports.read as Read;
const live = Array.from({ length: K }, () => engine.instantiate(module));
let sum = 0;
for (let round = 0; round < 10_000; round++) {
  for (const instance of live) sum += (instance.exports.read as Read)();
}
do_not_optimize(sum);
const read = live[0].exports.read as Read;

summary(() => {
  group(`one call of read(), ${K} warm instances`, () => {
    bench("the runtime's function", () => do_not_optimize(raw())).baseline(true);
    bench("a tenant's wrapper", () => do_not_optimize(read()));
  });
});
await run();
for (const instance of live) instance.dispose();
engine.close();
