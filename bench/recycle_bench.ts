/**
 * What each step of a recycled instance's cycle costs (issue 10: "measure what each step
 * costs"), in one run per runtime: the pool slot (admit + leave, two FFI calls), the native
 * reset of a host memory (one PAGEMAP_SCAN when nothing was written; restores and protections
 * for what was), with a 1-page and an 80-page memory, and the whole cycle (instantiate, one
 * call, dispose) of the small module and of the 5 MiB image module for comparison.
 *
 * Prints mitata's table and writes `bench/results/recycle-<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { engineState } from "../src/engine_state.ts";
import { moduleState } from "../src/module.ts";
import { HostMemory } from "../src/run/host_memory_pool.ts";
import { image5MiBModuleBytes } from "./image_modules.ts";
import { smallModuleBytes } from "./small_module.ts";

const engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 10 } }),
));
const state = engineState(engine);
const small = new Module(engine, smallModuleBytes());
const large = new Module(engine, image5MiBModuleBytes());

function hostMemory(module: Module, min: number, max: number): HostMemory {
  const memory = new HostMemory({ min, max, key: `${min}:${max}` }, {
    lib: state.lib,
    pointer: state.pointer,
    minReservedPages: state.lib.runtime === "bun" ? 65536 : 0,
  });
  if (!memory.prepare(moduleState(module).pointer, 0)) throw new Error("prepare failed");
  return memory;
}

const one = hostMemory(small, 1, 1);
const eighty = hostMemory(large, 80, 96);
const PAGE = 4096;

function write(memory: HostMemory, pages: number): void {
  const bytes = new Uint8Array(memory.memory.buffer);
  for (let p = 0; p < pages; p++) bytes[p * 4 * PAGE + 7] ^= 1;
}

summary(() => {
  group("a recycled instance's cycle, step by step", () => {
    bench("pool slot: admit + leave", () => {
      state.lib.instanceLeave(state.pointer, state.lib.instanceAdmit(state.pointer));
    });
    bench("reset, 1-page memory, nothing written", () => one.reset());
    bench("reset, 80-page memory, nothing written", () => eighty.reset()).baseline(true);
    bench("write 1 page + reset, 80-page memory", () => {
      write(eighty, 1);
      eighty.reset();
    });
    bench("write 16 pages + reset, 80-page memory", () => {
      write(eighty, 16);
      eighty.reset();
    });
    bench("whole cycle, small module", () => {
      const instance = engine.instantiate(small);
      (instance.exports.read as () => number)();
      instance.dispose();
    });
    bench("whole cycle, 5 MiB image module", () => {
      const instance = engine.instantiate(large);
      (instance.exports.read as () => number)();
      instance.dispose();
    });
  });
});

writeResults(`recycle-${RUNTIME}`, await run({ format: "mitata" }));
one.giveUp();
eighty.giveUp();
engine.close();
