/**
 * Instantiate+dispose of a small module (1 page, a 1 KiB data segment, a 10-entry table):
 * pooling, on-demand, and the runtime's own WebAssembly as the baseline, in one run.
 * Prints mitata's table and writes `bench/results/<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { engineState } from "../src/engine_state.ts";
import { moduleState } from "../src/module.ts";
import { smallModuleBytes } from "./small_module.ts";

const bytes = smallModuleBytes();

const pooling = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
));
const uffd = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 }, uffd: true }),
));
// The same pool without instance finalization (Config#withInstanceFinalization(false)).
const unfinalized = new Engine(
  new Config().withInstanceFinalization(false).withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
  ),
);
const unfinalizedModule = new Module(unfinalized, bytes);
const onDemand = new Engine();
const pooledModule = new Module(pooling, bytes);
const uffdModule = new Module(uffd, bytes);
// The same cycle through the raw FFI calls, without the TypeScript API around them: the API's
// own cost is the difference.
const raw = { engine: engineState(pooling), module: moduleState(pooledModule) };
const onDemandModule = new Module(onDemand, bytes);
const wasmModule = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);

summary(() => {
  group("instantiate+dispose, small module", () => {
    bench("WebAssembly.Instance", () => new WebAssembly.Instance(wasmModule)).baseline(true);
    bench("wasmpool pooling", () => pooling.allocate(pooledModule).dispose());
    bench("wasmpool pooling (uffd)", () => uffd.allocate(uffdModule).dispose());
    bench(
      "wasmpool pooling, no finalization",
      () => unfinalized.allocate(unfinalizedModule).dispose(),
    );
    bench("raw FFI calls, pooling", () => {
      const { lib, pointer, scratch } = raw.engine;
      const id = lib.allocate(pointer, raw.module.pointer, scratch.pointer, scratch.bytes);
      lib.instanceDispose(pointer, id);
    });
    bench("wasmpool on-demand", () => onDemand.allocate(onDemandModule).dispose());
    bench("WebAssembly.Memory 1 page", () => new WebAssembly.Memory({ initial: 1 }));
  });
});

writeResults(RUNTIME, await run({ format: "mitata" }));
pooling.close();
uffd.close();
unfinalized.close();
onDemand.close();
