/**
 * What a host memory costs the runtime: `new WebAssembly.Memory({initial: 1, maximum: 1})`,
 * `new WebAssembly.Instance` of a small module importing an existing memory, and
 * `memory.grow(0)` (which detaches the buffer, when one was taken). Prints mitata's table and writes
 * `bench/results/host-memory-<runtime>.json`.
 *
 *   deno run --allow-all bench/host_memory_bench.ts
 *   bun bench/host_memory_bench.ts
 *
 * @module
 */

import { bench, do_not_optimize, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { memoryAccessModuleBytes } from "../tests/fixtures/memory_access_module.ts";

const smallImporting = new WebAssembly.Module(memoryAccessModuleBytes(1, 1));
const pooledMemory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
const grownSmall = new WebAssembly.Memory({ initial: 1, maximum: 1 });
const grownLarge = new WebAssembly.Memory({ initial: 80, maximum: 96 });

summary(() => {
  bench("new WebAssembly.Memory({initial: 1, maximum: 1})", () => {
    do_not_optimize(new WebAssembly.Memory({ initial: 1, maximum: 1 }));
  });
  bench("new WebAssembly.Instance, small module importing a memory", () => {
    do_not_optimize(new WebAssembly.Instance(smallImporting, { env: { memory: pooledMemory } }));
  });
  // grow(0) detaches the buffer only when one was made since the last grow: measured both ways.
  bench("memory.grow(0), no buffer taken since the last grow", () => {
    do_not_optimize(grownSmall.grow(0));
  }).baseline(true);
  bench("memory.grow(0) after taking the buffer, 1 page", () => {
    do_not_optimize(grownSmall.buffer);
    do_not_optimize(grownSmall.grow(0));
  });
  bench("memory.grow(0) after taking the buffer, 80 pages", () => {
    do_not_optimize(grownLarge.buffer);
    do_not_optimize(grownLarge.grow(0));
  });
  bench("memory.buffer alone (the same buffer each time)", () => {
    do_not_optimize(pooledMemory.buffer);
  });
});

writeResults(`host-memory-${RUNTIME}`, await run());
