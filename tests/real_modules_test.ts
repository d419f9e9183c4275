/**
 * Real-world modules from npm (see `tests/fixtures/npm_modules.ts`) translated and instantiated
 * by wasmpool, under a pooling engine whose limits are raised just enough to fit each module
 * and under an on-demand engine. The initial memory (and the exported table, when there is
 * one) must be exactly what the runtime's own `new WebAssembly.Instance` produces, and a pool
 * slot reused twenty times in a row must come back clean every time. Runs unchanged under
 * `deno test` and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  Engine,
  type Imports,
  InstanceAllocationStrategy,
  type InstanceHandle,
  type Memory,
  Module,
  type ModuleLimits,
  Table,
} from "../mod.ts";
import {
  definedLimits,
  readRealModule,
  type RealModule,
  realModules,
  sectionCount,
  stubImports,
} from "./fixtures/npm_modules.ts";

const PAGE = 65536;
/** Pages a pooling engine allows beyond the module's minimum, so that tests can grow it. */
const HEADROOM_PAGES = 2;
const REUSES = 20;

/** What the runtime's own instance of a module looks like right after instantiation. */
interface Reference {
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** The initial linear memory. */
  readonly memory: Uint8Array;
  /** The exported table's entries as function indices (or null), when one is exported. */
  readonly table: (number | null)[] | null;
  /** The imports and exports the runtime reports, as `module.name:kind` / `name:kind`. */
  readonly imports: string[];
  readonly exports: string[];
  /** What the module imports, as wasmpool takes it: every import is a function. */
  readonly wasmpoolImports: Imports;
}

const references = new Map<string, Reference>();

/** The runtime's instance of `m` with stub imports, computed once per module. */
function reference(m: RealModule): Reference {
  const cached = references.get(m.name);
  if (cached !== undefined) return cached;
  const bytes = readRealModule(m);
  const compiled = new WebAssembly.Module(bytes);
  const instance = new WebAssembly.Instance(compiled, stubImports(compiled));
  const memory = instance.exports[m.facts.memoryExport];
  assert.ok(memory instanceof WebAssembly.Memory);
  let table: (number | null)[] | null = null;
  if (m.facts.tableExport !== null) {
    const exported = instance.exports[m.facts.tableExport];
    assert.ok(exported instanceof WebAssembly.Table);
    table = [];
    for (let i = 0; i < exported.length; i++) {
      // The JS API names an exported function by its index in the module's function space.
      const f = exported.get(i) as { name: string } | null;
      table.push(f === null ? null : Number(f.name));
    }
  }
  const wasmpoolImports: Record<string, Record<string, () => void>> = {};
  const descriptors = WebAssembly.Module.imports(compiled);
  for (const d of descriptors) {
    assert.equal(d.kind, "function", `${d.module}.${d.name} is not a function import`);
    (wasmpoolImports[d.module] ??= {})[d.name] = () => {};
  }
  const ref: Reference = {
    bytes,
    memory: new Uint8Array(memory.buffer),
    table,
    imports: descriptors.map((d) => `${d.module}.${d.name}:${d.kind}`),
    exports: WebAssembly.Module.exports(compiled).map((e) => `${e.name}:${e.kind}`),
    wasmpoolImports,
  };
  references.set(m.name, ref);
  return ref;
}

/** Module limits that fit `bytes` exactly (plus a little memory headroom). */
function limitsFor(bytes: Uint8Array<ArrayBuffer>): Partial<ModuleLimits> {
  const memory = definedLimits(bytes, "memory");
  const table = definedLimits(bytes, "table");
  assert.ok(memory !== null, "the module defines no memory");
  const importedFunctions = WebAssembly.Module.imports(new WebAssembly.Module(bytes)).length;
  return {
    importedFunctions,
    types: sectionCount(bytes, 1),
    functions: sectionCount(bytes, 3),
    tables: sectionCount(bytes, 4),
    memories: sectionCount(bytes, 5),
    globals: sectionCount(bytes, 6),
    tableElements: table?.min ?? 0,
    memoryPages: memory.min + HEADROOM_PAGES,
  };
}

function poolingEngine(bytes: Uint8Array<ArrayBuffer>, count: number, uffd = false): Engine {
  const moduleLimits = limitsFor(bytes);
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    uffd,
    moduleLimits,
    instanceLimits: { count, memoryReservationSize: moduleLimits.memoryPages! * PAGE },
  })));
}

function onDemandEngine(): Engine {
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.onDemand()));
}

/** The index of the first byte where `a` and `b` differ, or -1; compares 32 bits at a time. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  const words = a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0 ? length >>> 2 : 0;
  const a32 = new Uint32Array(a.buffer, a.byteOffset, words);
  const b32 = new Uint32Array(b.buffer, b.byteOffset, words);
  let start = words * 4;
  for (let i = 0; i < words; i++) {
    if (a32[i] !== b32[i]) {
      start = i * 4;
      break;
    }
  }
  for (let i = start; i < length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = firstDifference(actual, expected);
  assert.equal(
    at,
    -1,
    at < 0 ? "" : `${what} differs at byte ${at}: ${actual[at]} instead of ${expected[at]}`,
  );
}

function tableEntries(table: Table): (number | null)[] {
  const entries: (number | null)[] = [];
  for (let i = 0; i < table.size; i++) entries.push(table.get(i));
  return entries;
}

/** Checks a fresh wasmpool instance of `m` against the runtime's instance. */
function checkInstance(
  m: RealModule,
  ref: Reference,
  instance: InstanceHandle,
  what: string,
): void {
  assert.equal(instance.memories.length, 1);
  const memory = instance.memories[0];
  assert.equal(instance.exports[m.facts.memoryExport], memory);
  assert.equal(memory.pages, m.facts.memoryMin, `${what}: pages`);
  assert.equal(memory.byteLength, ref.memory.length, `${what}: byteLength`);
  assertSameBytes(new Uint8Array(memory.buffer), ref.memory, `${what}: memory`);
  assert.equal(instance.tables.length, 1);
  const table = instance.tables[0];
  assert.equal(table.size, m.facts.tableMin, `${what}: table size`);
  if (m.facts.tableExport !== null) {
    const exported = instance.exports[m.facts.tableExport];
    assert.ok(exported instanceof Table);
    assert.equal(exported, table);
    assert.ok(ref.table !== null);
    assert.equal(exported.size, ref.table.length, `${what}: table size`);
    assert.deepEqual(tableEntries(exported), ref.table, `${what}: table entries`);
  }
}

/** Overwrites every byte and entry the instance can reach, growing the memory first. */
function scribble(memory: Memory, table: Table): void {
  memory.grow(HEADROOM_PAGES);
  new Uint8Array(memory.buffer).fill(0xa5);
  for (let i = 0; i < table.size; i++) table.set(i, 7);
}

describe("real modules from npm, instantiated by wasmpool", () => {
  for (const m of realModules()) {
    describe(`${m.name} (${m.package}@${m.version})`, () => {
      const strategies = [
        { kind: "pooling", make: (bytes: Uint8Array<ArrayBuffer>) => poolingEngine(bytes, 2) },
        {
          kind: "pooling, uffd (paged)",
          make: (bytes: Uint8Array<ArrayBuffer>) => poolingEngine(bytes, 2, true),
        },
        { kind: "on-demand", make: () => onDemandEngine() },
      ];
      for (const { kind, make } of strategies) {
        it(`${kind}: translates, instantiates, and matches the runtime's instance`, () => {
          const ref = reference(m);
          using engine = make(ref.bytes);
          const module = new Module(engine, ref.bytes);
          assert.deepEqual(
            module.imports.map((i) => `${i.module}.${i.name}:${i.kind}`),
            ref.imports,
          );
          assert.deepEqual(module.exports.map((e) => `${e.name}:${e.kind}`), ref.exports);
          using instance = engine.allocate(module, ref.wasmpoolImports);
          checkInstance(m, ref, instance, kind);
          assert.equal(engine.stats().liveInstances, 1);
          instance.dispose();
          assert.equal(engine.stats().liveInstances, 0);
        });
      }

      for (const uffd of [false, true]) {
        it(`pooling${uffd ? ", uffd" : ""}: ${REUSES} instances in a row in one slot each start out identical`, () => {
          const ref = reference(m);
          using engine = poolingEngine(ref.bytes, 1, uffd);
          const module = new Module(engine, ref.bytes);
          let address: bigint | null = null;
          let firstTable: (number | null)[] | null = null;
          for (let round = 0; round < REUSES; round++) {
            const instance = engine.allocate(module, ref.wasmpoolImports);
            try {
              const what = `round ${round}`;
              checkInstance(m, ref, instance, what);
              const memory = instance.memories[0];
              const table = instance.tables[0];
              address ??= memory.address;
              assert.equal(memory.address, address, `${what}: the slot was not reused`);
              const entries = tableEntries(table);
              firstTable ??= entries;
              assert.deepEqual(entries, firstTable, `${what}: table entries`);
              scribble(memory, table);
            } finally {
              instance.dispose();
            }
          }
          const stats = engine.stats();
          assert.equal(stats.instantiations, REUSES);
          assert.equal(stats.deallocations, REUSES);
          assert.equal(stats.liveInstances, 0);
          assert.equal(stats.quarantinedSlots, 0);
        });
      }
    });
  }
});
