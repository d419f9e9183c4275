/**
 * A real module from npm with a multi-megabyte data image (tiktoken: 4.9 MB in 81 segments,
 * 91 pages), instantiate+dispose under each strategy against the runtime's own
 * `new WebAssembly.Instance`; and `Memory#grow` by one page and back (a fresh instance), against
 * `WebAssembly.Memory#grow`. Writes `bench/results/real-<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, InstanceAllocationStrategy, Module, type PoolingOptions } from "../mod.ts";
import { readRealModule, realModules, stubImports } from "../tests/fixtures/npm_modules.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";

const tiktoken = realModules().find((m) => m.name === "tiktoken")!;
const bytes = readRealModule(tiktoken);
const wasmModule = new WebAssembly.Module(bytes);
const wasmImports = stubImports(wasmModule, bytes);

const limits: PoolingOptions = {
  instanceLimits: { count: 8, memoryReservationSize: 256 * 65536 },
  moduleLimits: { memoryPages: 256, tableElements: 1000, functions: 2000, globals: 20 },
};
const engines = {
  "pooling": new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling(limits),
  )),
  "pooling (uffd)": new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ ...limits, uffd: true }),
  )),
  "on-demand": new Engine(),
};

function functionStubs(module: Module): Record<string, Record<string, () => never>> {
  const imports: Record<string, Record<string, () => never>> = {};
  for (const i of module.imports) {
    (imports[i.module] ??= {})[i.name] = () => {
      throw new Error("not callable");
    };
  }
  return imports;
}

summary(() => {
  group(`instantiate+dispose, ${tiktoken.name} (${tiktoken.package}@${tiktoken.version})`, () => {
    bench("WebAssembly.Instance", () => new WebAssembly.Instance(wasmModule, wasmImports))
      .baseline(true);
    for (const [name, engine] of Object.entries(engines)) {
      const module = new Module(engine, bytes);
      const imports = functionStubs(module);
      bench(`wasmpool ${name}`, () => engine.allocate(module, imports).dispose());
    }
  });
});

const growBytes = buildModule({ memories: [{ min: 1, max: 16, shared: false }] });
summary(() => {
  group("instantiate, grow by 1 page, touch it, dispose", () => {
    bench("grow: WebAssembly.Memory", () => {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 16 });
      memory.grow(1);
      new Uint8Array(memory.buffer)[65536] = 1;
    }).baseline(true);
    for (const [name, engine] of Object.entries(engines)) {
      const module = new Module(engine, growBytes);
      bench(`grow: wasmpool ${name}`, () => {
        const instance = engine.allocate(module);
        const memory = instance.memories[0];
        memory.grow(1);
        new Uint8Array(memory.buffer)[65536] = 1;
        instance.dispose();
      });
    }
  });
});

writeResults(`real-${RUNTIME}`, await run({ format: "mitata" }));
for (const engine of Object.values(engines)) engine.close();
