/**
 * The demo: instantiates a small embedded module (or the module given as the first argument)
 * thousands of times under each allocation strategy and prints what it did.
 *
 * Run it with `script/demo [module.wasm]`.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import {
  Config,
  Engine,
  type Instance,
  InstanceAllocationStrategy,
  Module,
  WasmpoolError,
} from "./mod.ts";
import { buildModule } from "./tests/fixtures/wasm_builder.ts";

const CYCLES = 5000;

function embeddedModule(): Uint8Array {
  const data = new Uint8Array(1024).map((_, i) => (i * 7) & 0xff);
  return buildModule({
    types: [{ params: [], results: [] }],
    functions: [0, 0, 0],
    memories: [{ min: 1, max: 2, shared: false }],
    tables: [{ element: "funcref", min: 10, max: 10 }],
    data: [{ mode: "active", offset: { kind: "i32.const", value: 1024 }, data }],
    elements: [{ mode: "active", offset: { kind: "i32.const", value: 0 }, elements: [0, 1, 2] }],
    exports: [{ name: "memory", kind: "memory", index: 0 }],
  });
}

function stubImports(module: Module): Record<string, Record<string, () => never>> {
  const imports: Record<string, Record<string, () => never>> = {};
  for (const i of module.imports) {
    if (i.kind !== "function") {
      throw new WasmpoolError(`the demo cannot provide the ${i.kind} import ${i.module}.${i.name}`);
    }
    imports[i.module] ??= {};
    imports[i.module][i.name] = () => {
      throw new Error("not callable");
    };
  }
  return imports;
}

function run(label: string, strategy: InstanceAllocationStrategy, bytes: Uint8Array): void {
  using engine = new Engine(new Config().withAllocationStrategy(strategy));
  const module = new Module(engine, bytes);
  const imports = stubImports(module);
  let first: Instance | null = engine.instantiate(module, imports);
  const memory = first.memories[0];
  const summary = memory
    ? `${memory.pages} page(s) at 0x${memory.address.toString(16)}`
    : "no memory";
  first.dispose();
  first = null;
  const start = performance.now();
  for (let i = 0; i < CYCLES; i++) engine.instantiate(module, imports).dispose();
  const micros = ((performance.now() - start) * 1000) / CYCLES;
  const stats = engine.stats();
  console.log(
    `${label.padEnd(10)} ${micros.toFixed(2).padStart(8)} µs per instantiate+dispose  ` +
      `(${stats.instantiations} instantiations, memory: ${summary})`,
  );
}

const path = (globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ??
  (globalThis as { process?: { argv: string[] } }).process?.argv[2];
const bytes = path ? new Uint8Array(readFileSync(path)) : embeddedModule();
console.log(`module: ${path ?? "embedded (1 page, 1 KiB data segment, 10-entry table)"}`);
try {
  run("pooling", InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }), bytes);
  run("on-demand", InstanceAllocationStrategy.onDemand(), bytes);
} catch (error) {
  if (!(error instanceof WasmpoolError)) throw error;
  console.log(`the module does not fit the default limits: ${error.message}`);
}
