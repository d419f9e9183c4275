// Running instances: engine.instantiate gives instances whose code runs on the runtime's own
// engine, with exports that behave like WebAssembly.Instance#exports, differentially checked
// against `new WebAssembly.Instance` of the same bytes, under pooling and on demand.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  type GuardedMemory,
  type GuardedTable,
  InstanceAllocationStrategy,
  LinkError,
  MalformedModuleError,
  Module,
  PoolExhaustedError,
  UnsupportedFeatureError,
  WasmpoolError,
} from "../mod.ts";
import {
  callerModule,
  COUNTER_INITIAL,
  Op,
  peekerModule,
  START_MARK,
  TENANT_DATA,
  tenantModule,
} from "./fixtures/run_modules.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

type Fn = (...args: unknown[]) => unknown;
type Exports = Record<string, unknown>;

const STRATEGIES = {
  pooling: () =>
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count: 8 },
      moduleLimits: { importedMemories: 1, importedTables: 1, importedGlobals: 2 },
    }),
  "on-demand": () => InstanceAllocationStrategy.onDemand(),
} as const;

function engineFor(kind: keyof typeof STRATEGIES): Engine {
  return new Engine(new Config().withAllocationStrategy(STRATEGIES[kind]()));
}

function fn(exports: Exports, name: string): Fn {
  return exports[name] as Fn;
}

function plainExports(bytes: Uint8Array<ArrayBuffer>, imports?: WebAssembly.Imports): Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports as Exports;
}

function bufferOf(memory: unknown): ArrayBuffer {
  return (memory as { buffer: ArrayBuffer }).buffer;
}

for (const kind of Object.keys(STRATEGIES) as (keyof typeof STRATEGIES)[]) {
  describe(`running instances (${kind})`, () => {
    it("run their code like new WebAssembly.Instance: start function, data, calls, tables", () => {
      using engine = engineFor(kind);
      const bytes = tenantModule();
      const module = new Module(engine, bytes);
      const plain = plainExports(bytes);
      for (let round = 0; round < 3; round++) {
        using instance = engine.instantiate(module);
        const e = instance.exports;
        assert.deepEqual(Object.keys(e), Object.keys(plain));
        assert.equal(fn(e, "add")(2, 40), fn(plain, "add")(2, 40));
        assert.equal(fn(e, "callAt")(0, 5, 6), 11);
        assert.throws(() => fn(e, "callAt")(1, 5, 6), WebAssembly.RuntimeError);
        assert.equal(fn(e, "size")(), 1);
        assert.equal((e.counter as { value: number }).value, COUNTER_INITIAL);
        const bytesSeen = new Uint8Array(bufferOf(e.memory));
        assert.deepEqual(bytesSeen, new Uint8Array(bufferOf(plain.memory)));
        assert.equal(bytesSeen[START_MARK.offset], START_MARK.value);
        assert.deepEqual(bytesSeen.subarray(0, TENANT_DATA.length), TENANT_DATA);
        // The tenant changes everything it can; the next round must not see any of it.
        fn(e, "store")(5000, 77);
        bytesSeen[6000] = 88;
        assert.equal(fn(e, "load")(6000), 88);
        assert.equal(fn(e, "bump")(), COUNTER_INITIAL + 1);
        (e.table as GuardedTable).set(1, e.add);
        assert.equal(fn(e, "callAt")(1, 1, 2), 3);
      }
    });

    it("export under any name, as own properties of a null-prototype object", () => {
      // Names an ordinary object would take from Object.prototype, or treat as its prototype.
      const names = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "x"];
      const bytes = buildModule({
        types: [{ params: [], results: ["i32"] }],
        functions: names.map(() => 0),
        exports: names.map((name, index) => ({ name, kind: "function" as const, index })),
        // i32.const k
        bodies: names.map((_, k) => ({ code: [0x41, k] })),
      });
      using engine = engineFor(kind);
      const module = new Module(engine, bytes);
      const plain = plainExports(bytes);
      for (let round = 0; round < 3; round++) {
        using instance = engine.instantiate(module);
        const e = instance.exports;
        assert.equal(Object.getPrototypeOf(e), Object.getPrototypeOf(plain));
        assert.deepEqual(Object.keys(e), Object.keys(plain));
        for (const name of names) {
          assert.ok(Object.hasOwn(e, name), name);
          assert.equal(fn(e, name)(), fn(plain, name)(), name);
        }
      }
    });

    it("hand out exports that throw and buffers that detach once disposed", () => {
      using engine = engineFor(kind);
      const module = new Module(engine, tenantModule());
      const instance = engine.instantiate(module);
      const e = instance.exports;
      const memory = e.memory as GuardedMemory;
      const buffer = memory.buffer;
      const table = e.table as GuardedTable;
      const fromTable = table.get(0) as Fn;
      assert.equal(fromTable(1, 2), 3);
      assert.equal(buffer.byteLength, 65536);
      instance.dispose();
      assert.equal(buffer.byteLength, 0);
      assert.throws(() => fn(e, "add")(1, 2), DisposedError);
      assert.throws(() => fromTable(1, 2), DisposedError);
      assert.throws(() => memory.buffer, DisposedError);
      assert.throws(() => memory.grow(1), DisposedError);
      assert.throws(() => table.get(0), DisposedError);
      assert.throws(() => (e.counter as { value: number }).value, DisposedError);
      assert.throws(() => instance.exports, DisposedError);
      assert.equal(instance.disposed, true);
      instance.dispose(); // again: nothing
    });

    it("guard a function reachable only through a table's initializer once disposed", () => {
      // (table (export "t") 1 funcref (ref.func $peek)) (memory (export "memory") 1)
      // (func $peek (result i32) (i32.load (i32.const 0)))
      // (func (export "store") (param i32) (i32.store (i32.const 0) (local.get 0)))
      const bytes = new Uint8Array([
        ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
        ...[0x01, 0x09, 0x02, 0x60, 0x00, 0x01, 0x7f, 0x60, 0x01, 0x7f, 0x00],
        ...[0x03, 0x03, 0x02, 0x00, 0x01],
        ...[0x04, 0x09, 0x01, 0x40, 0x00, 0x70, 0x00, 0x01, 0xd2, 0x00, 0x0b],
        ...[0x05, 0x03, 0x01, 0x00, 0x01],
        ...[0x07, 0x16, 0x03, 0x01, 0x74, 0x01, 0x00],
        ...[0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00],
        ...[0x05, 0x73, 0x74, 0x6f, 0x72, 0x65, 0x00, 0x01],
        ...[0x0a, 0x13, 0x02, 0x07, 0x00, 0x41, 0x00, 0x28, 0x02, 0x00, 0x0b],
        ...[0x09, 0x00, 0x41, 0x00, 0x20, 0x00, 0x36, 0x02, 0x00, 0x0b],
      ]);
      assert.ok(WebAssembly.validate(bytes), "the fixture is a valid module");
      using engine = engineFor(kind);
      const module = new Module(engine, bytes);
      const first = engine.instantiate(module);
      fn(first.exports, "store")(42);
      const peek = (first.exports.t as GuardedTable).get(0) as Fn;
      assert.equal(peek(), 42);
      first.dispose();
      const second = engine.instantiate(module);
      fn(second.exports, "store")(1234);
      assert.throws(() => peek(), DisposedError, "the first tenant's function reads no more");
      second.dispose();
    });

    it("detach a memory's buffer when the code grows it, before the host reads it", () => {
      using engine = engineFor(kind);
      const module = new Module(engine, tenantModule());
      using instance = engine.instantiate(module);
      const e = instance.exports;
      const memory = e.memory as GuardedMemory;
      const before = memory.buffer;
      assert.equal(fn(e, "grow")(1), 1);
      assert.equal(before.byteLength, 0, "the old buffer is detached when the call returns");
      assert.equal(memory.buffer.byteLength, 2 * 65536);
      assert.equal(memory.grow(1), 2);
      assert.equal(memory.buffer.byteLength, 3 * 65536);
      assert.equal(fn(e, "grow")(5), -1, "past the module's maximum, as a plain instance");
      assert.throws(() => memory.grow(5), RangeError);
    });

    it("call host imports after checking the aliases, and pass their results back", () => {
      using engine = engineFor(kind);
      const growing = buildModule({
        types: [{ params: ["i32"], results: ["i32"] }],
        imports: [{ module: "env", name: "seen", desc: { kind: "function", type: 0 } }],
        functions: [0],
        memories: [{ min: 1, max: 3, shared: false }],
        exports: [
          { name: "grow_then_call", kind: "function", index: 1 },
          { name: "memory", kind: "memory", index: 0 },
        ],
        bodies: [{ code: [...Op.localGet(0), ...Op.memoryGrow, ...Op.call(0)] }],
      });
      const module = new Module(engine, growing);
      let held: ArrayBuffer | null = null;
      const lengths: number[] = [];
      using instance = engine.instantiate(module, {
        env: {
          seen: (old: number) => {
            lengths.push(held!.byteLength, bufferOf(instance.exports.memory).byteLength);
            return old + 100;
          },
        },
      });
      held = bufferOf(instance.exports.memory);
      assert.equal(fn(instance.exports, "grow_then_call")(1), 101);
      assert.deepEqual(lengths, [0, 2 * 65536]);
    });

    it("refuse a missing import with a LinkError that is a WasmpoolError", () => {
      using engine = engineFor(kind);
      const module = new Module(engine, callerModule());
      assert.throws(() => engine.instantiate(module), LinkError);
      assert.throws(() => engine.instantiate(module, { env: {} }), (error: unknown) => {
        assert.ok(error instanceof LinkError && error instanceof WasmpoolError);
        assert.match((error as Error).message, /log|import/i);
        return true;
      });
      assert.equal(engine.stats().liveInstances, 0);
      using instance = engine.instantiate(module, { env: { log: (x: number) => x * 2 } });
      assert.equal(fn(instance.exports, "run")(21), 42);
    });

    it("let a trapping start function fail with the runtime's error and leak nothing", () => {
      using engine = engineFor(kind);
      const trapping = buildModule({
        types: [{ params: [], results: [] }],
        functions: [0],
        memories: [{ min: 1, max: 1, shared: false }],
        start: 0,
        bodies: [{ code: [0x00] }], // unreachable
      });
      const module = new Module(engine, trapping);
      for (let i = 0; i < 20; i++) {
        assert.throws(() => engine.instantiate(module), WebAssembly.RuntimeError);
      }
      const stats = engine.stats();
      assert.equal(stats.liveInstances, 0);
      assert.equal(stats.runningInstances, 0);
    });

    it("report a module the runtime does not compile as a MalformedModuleError", () => {
      using engine = engineFor(kind);
      const invalid = buildModule({
        types: [{ params: [], results: ["i32"] }],
        functions: [0],
        bodies: [{ code: [] }], // returns nothing: does not validate
      });
      // wasmpool's parser skips code; the runtime's compiler, run by new Module, does not.
      assert.throws(() => new Module(engine, invalid), MalformedModuleError);
      assert.equal(engine.stats().modules, 0, "nothing of the module is kept");
    });

    it("share memories, tables, globals and functions between instances", () => {
      using engine = engineFor(kind);
      const exporter = new Module(engine, tenantModule());
      const importer = new Module(
        engine,
        buildModule({
          types: [{ params: ["i32", "i32"], results: ["i32"] }, {
            params: ["i32"],
            results: ["i32"],
          }],
          imports: [
            { module: "a", name: "add", desc: { kind: "function", type: 0 } },
            {
              module: "a",
              name: "memory",
              desc: { kind: "memory", type: { min: 1, max: 4, shared: false } },
            },
          ],
          functions: [1],
          exports: [{ name: "peek", kind: "function", index: 1 }],
          bodies: [{ code: [...Op.localGet(0), ...Op.i32Load8U] }],
        }),
      );
      const a = engine.instantiate(exporter);
      const b = engine.instantiate(importer, {
        a: { add: a.exports.add, memory: a.exports.memory },
      });
      fn(a.exports, "store")(300, 9);
      assert.equal(fn(b.exports, "peek")(300), 9);
      a.dispose();
      // The importer keeps the exporter's memory: it still reads it.
      assert.equal(fn(b.exports, "peek")(300), 9);
      assert.throws(() => fn(a.exports, "add")(1, 2), DisposedError);
      b.dispose();
      assert.equal(engine.stats().runningInstances, 0);
    });
  });
}

describe("running instances (pooling)", () => {
  it("are capped by instanceLimits.count, with Wasmtime's message", () => {
    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({ instanceLimits: { count: 2 } }),
    ));
    const module = new Module(engine, tenantModule());
    const a = engine.instantiate(module);
    const b = engine.allocate(module);
    assert.throws(
      () => engine.instantiate(module),
      (error: unknown) =>
        error instanceof PoolExhaustedError &&
        error.message === "Limit of 2 concurrent instances has been reached",
    );
    a.dispose();
    using c = engine.instantiate(module);
    assert.equal(engine.stats().liveInstances, 2);
    b.dispose();
    assert.equal(engine.stats().liveInstances, 1);
    assert.ok(c);
  });

  it("reuse a memory at its shape, replace one its tenant grew, and count both", () => {
    // A new instance each time (the module's instances would otherwise be recycled, keeping
    // their memory): what is counted is the pool's memories.
    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({ instanceLimits: { count: 4 }, recycleInstances: false }),
    ));
    const module = new Module(engine, tenantModule());
    for (let i = 0; i < 5; i++) engine.instantiate(module).dispose();
    let stats = engine.stats();
    assert.equal(stats.hostMemoriesCreated, 1);
    assert.equal(stats.hostMemoriesReused, 4);
    const grown = engine.instantiate(module);
    fn(grown.exports, "grow")(1);
    grown.dispose();
    stats = engine.stats();
    assert.equal(stats.hostMemoriesReplaced, 1);
    assert.equal(stats.hostMemories, 0);
    using again = engine.instantiate(module);
    assert.equal(fn(again.exports, "size")(), 1);
    assert.equal(engine.stats().hostMemoriesCreated, 2);
  });

  it("share memories between instances when the limits allow imports", () => {
    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({
        instanceLimits: { count: 4 },
        moduleLimits: { importedMemories: 1, memories: 1 },
      }),
    ));
    const exporter = new Module(engine, tenantModule());
    const importer = new Module(engine, peekerModule());
    const a = engine.instantiate(exporter);
    const b = engine.instantiate(importer, { a: { memory: a.exports.memory } });
    fn(a.exports, "store")(300, 9);
    assert.equal(fn(b.exports, "peek")(300), 9);
    a.dispose();
    assert.equal(fn(b.exports, "peek")(300), 9, "the importer keeps the memory");
    assert.equal(engine.stats().hostMemoriesFree, 0, "not pooled while the importer lives");
    b.dispose();
    assert.equal(engine.stats().hostMemoriesFree, 1);
    using c = engine.instantiate(exporter);
    assert.equal(fn(c.exports, "load")(300), 0, "the next tenant sees none of it");
  });

  it("refuse a shared memory import with UnsupportedFeatureError", () => {
    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({ moduleLimits: { importedMemories: 1 } }),
    ));
    const shared = buildModule({
      imports: [{
        module: "env",
        name: "memory",
        desc: { kind: "memory", type: { min: 1, max: 1, shared: true } },
      }],
    });
    assert.throws(() => new Module(engine, shared), UnsupportedFeatureError);
  });
});

describe("running instances, disposed from inside their own call", () => {
  for (const kind of Object.keys(STRATEGIES) as (keyof typeof STRATEGIES)[]) {
    it(`throw into the code and keep the memory until the call returns (${kind})`, () => {
      using engine = engineFor(kind);
      const module = new Module(engine, callerModule());
      let instance: ReturnType<Engine["instantiate"]> | null = null;
      instance = engine.instantiate(module, {
        env: {
          log: (x: number) => {
            instance!.dispose();
            return x;
          },
        },
      });
      assert.throws(() => fn(instance!.exports, "run")(1), DisposedError);
    });
  }
});
