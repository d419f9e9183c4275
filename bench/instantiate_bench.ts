/**
 * Instantiate+dispose of a small module (1 page, a 1 KiB data segment, a 10-entry table):
 * pooling, on-demand, and the runtime's own WebAssembly as the baseline, in one run. Then the
 * same by image size (`image_modules.ts`: a 64 KiB and a 5 MiB image in a memory of 80..96
 * pages, and the small module), the 64 KiB image under pooling as the baseline.
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
import {
  image5MiBModuleBytes,
  image64KiBModuleBytes,
  IMAGE_MEMORY_PAGES,
} from "./image_modules.ts";

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

// Engines whose memories take the image modules; the small module fits them too.
const imageLimits = {
  moduleLimits: { memoryPages: IMAGE_MEMORY_PAGES.max },
  instanceLimits: { count: 100 },
};
const imagePools = {
  "pooling": new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling(imageLimits),
  )),
  "pooling (uffd)": new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ ...imageLimits, uffd: true }),
  )),
  "on-demand": onDemand,
};
const imageCases = {
  "small module": bytes,
  "64 KiB image": image64KiBModuleBytes(),
  "5 MiB image (80 segments)": image5MiBModuleBytes(),
};

summary(() => {
  group(`instantiate+dispose by image size, memory of ${IMAGE_MEMORY_PAGES.min} pages`, () => {
    for (const [strategy, engine] of Object.entries(imagePools)) {
      for (const [size, caseBytes] of Object.entries(imageCases)) {
        const module = new Module(engine, caseBytes);
        const b = bench(`${strategy}, ${size}`, () => engine.allocate(module).dispose());
        if (strategy === "pooling" && size === "64 KiB image") b.baseline(true);
      }
    }
    const big = new WebAssembly.Module(imageCases["5 MiB image (80 segments)"]);
    bench("WebAssembly.Instance, 5 MiB image (80 segments)", () => new WebAssembly.Instance(big));
  });
});

writeResults(RUNTIME, await run({ format: "mitata" }));
imagePools["pooling"].close();
imagePools["pooling (uffd)"].close();
pooling.close();
uffd.close();
unfinalized.close();
onDemand.close();
