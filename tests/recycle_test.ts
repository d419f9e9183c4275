// Recycled ("warm") instances: with pooling, an instance of a module that allows it is reset in
// place when its tenant disposes it and serves the next tenant. Every tenant must see exactly
// a new instance's state, call its own imports, and lose every reference when it disposes; each
// case where an instance cannot be recycled falls back to a new instance, and is counted.
import { Buffer } from "node:buffer";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  type GuardedGlobal,
  type GuardedMemory,
  type Instance,
  InstanceAllocationStrategy,
  LinkError,
  Module,
} from "../mod.ts";
import { prng } from "./fixtures/prng.ts";
import {
  callerModule,
  COUNTER_INITIAL,
  Op,
  peekerModule,
  START_MARK,
  tenantModule,
} from "./fixtures/run_modules.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";
import { IMAGE_5_MIB, imageModuleBytes } from "../bench/image_modules.ts";

type Fn = (...args: number[]) => number;

const CYCLES = 10_000;
const LIVE_AT_ONCE = 4;

function pooledEngine(count = 8): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count },
      moduleLimits: { importedGlobals: 1, importedMemories: 1 },
    }),
  ));
}

function fn(instance: Instance, name: string): Fn {
  return instance.exports[name] as Fn;
}

function tableEntries(instance: Instance, length: number): boolean[] {
  // callAt(i, ...) traps on a null entry: what a tenant can see of the table.
  return Array.from({ length }, (_, i) => {
    try {
      fn(instance, "callAt")(i, 1, 2);
      return true;
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) return false;
      throw error;
    }
  });
}

/** A module that imports its memory (env.memory): its instances cannot be recycled. */
function memoryImporter(): Uint8Array<ArrayBuffer> {
  return buildModule({
    imports: [{
      module: "env",
      name: "memory",
      desc: { kind: "memory", type: { min: 1, max: 1, shared: false } },
    }],
  });
}

describe("recycled instances", () => {
  it("are what a module gets, with or without an exported table, and say why not otherwise", () => {
    using engine = pooledEngine();
    assert.equal(new Module(engine, tenantModule({ exportTable: false })).notRecyclable, null);
    assert.equal(new Module(engine, tenantModule()).notRecyclable, null);
    assert.match(
      new Module(engine, memoryImporter()).notRecyclable ?? "",
      /imports a memory \(env\.memory\)/,
    );
    using onDemand = new Engine();
    assert.match(
      new Module(onDemand, tenantModule({ exportTable: false })).notRecyclable ?? "",
      /on demand/,
    );
  });

  it(`give ${CYCLES} seeded tenants a new instance's state, four alive at once`, {
    timeout: 120_000,
  }, () => {
    using engine = pooledEngine(LIVE_AT_ONCE);
    const bytes = tenantModule({ exportTable: false });
    const plain = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
    const initial = new Uint8Array((plain.memory as WebAssembly.Memory).buffer).slice();
    const module = new Module(engine, bytes);
    const random = prng(7);
    const live: { instance: Instance; buffer: ArrayBuffer; add: Fn }[] = [];
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      if (live.length === LIVE_AT_ONCE || (live.length > 0 && random() < 0.5)) {
        const [gone] = live.splice(Math.floor(random() * live.length), 1);
        gone.instance.dispose();
        assert.equal(gone.buffer.byteLength, 0);
        assert.throws(() => gone.add(1, 2), DisposedError);
      }
      const instance = engine.instantiate(module);
      const memory = instance.exports.memory as GuardedMemory;
      const bytesNow = new Uint8Array(memory.buffer);
      assert.deepEqual(bytesNow, initial, `cycle ${cycle}: memory`);
      assert.equal((instance.exports.counter as GuardedGlobal).value, COUNTER_INITIAL);
      if (cycle % 16 === 0) {
        assert.deepEqual(tableEntries(instance, 4), [true, false, false, false]);
      }
      // The tenant changes memory (through code and buffer), the global and the table.
      fn(instance, "store")(Math.floor(random() * 65536), 1 + (random() * 255 | 0));
      bytesNow[Math.floor(random() * 65536)] = 1 + (random() * 255 | 0);
      for (let i = random() * 4 | 0; i > 0; i--) fn(instance, "bump")();
      fn(instance, "setAt")(1 + Math.floor(random() * 3));
      live.push({ instance, buffer: memory.buffer, add: fn(instance, "add") });
    }
    for (const { instance } of live) instance.dispose();
    const stats = engine.stats();
    assert.equal(stats.liveInstances, 0);
    assert.equal(stats.warmMisses, LIVE_AT_ONCE, "one instance made per tenant alive at once");
    assert.equal(stats.warmHits, CYCLES - LIVE_AT_ONCE);
    assert.equal(stats.recycled, CYCLES);
    assert.equal(stats.warmIdle, LIVE_AT_ONCE);
    assert.equal(stats.hostMemoriesCreated, LIVE_AT_ONCE);
  });

  it("restore a 5 MiB imaged memory after tenants that wrote nothing, or wrote from JavaScript", () => {
    // From 4 MiB a reset skips its scan while the process took no page fault
    // (zig/src/host_memory.zig, fault_mark): idle tenants in between must not hide a write.
    const engine = pooledEngine(2);
    const module = new Module(engine, imageModuleBytes(IMAGE_5_MIB));
    const expected = new Uint8Array(
      (new WebAssembly.Instance(new WebAssembly.Module(imageModuleBytes(IMAGE_5_MIB)))
        .exports.memory as WebAssembly.Memory).buffer,
    ).slice();
    const pages = expected.byteLength / 4096;
    const random = prng(17);
    for (let cycle = 0; cycle < 200; cycle++) {
      const instance = engine.instantiate(module);
      const bytes = new Uint8Array((instance.exports.memory as GuardedMemory).buffer);
      assert.equal(Buffer.compare(bytes, expected), 0, `cycle ${cycle}: not the image`);
      if (cycle % 3 === 0) {
        // Pages in and past the image: some read by earlier tenants, some written before.
        for (let k = 0; k < 4; k++) bytes[Math.floor(random() * pages) * 4096 + 9] ^= 0x5a;
        bytes[cycle * 4096 % expected.byteLength] ^= 0xff;
      } else {
        // Idle, or reading only.
        if (cycle % 3 === 1) assert.equal((instance.exports.read as Fn)(), 0x01010101);
      }
      instance.dispose();
    }
    assert.equal(engine.stats().recycled >= 199, true);
    engine.close();
  });

  it("call each tenant's own imports, through the same instance", () => {
    using engine = pooledEngine();
    const module = new Module(engine, callerModule());
    for (let tenant = 0; tenant < 5; tenant++) {
      const calls: number[] = [];
      using instance = engine.instantiate(module, {
        env: { log: (x: number) => (calls.push(x), x * 10 + tenant) },
      });
      assert.equal(fn(instance, "run")(tenant), tenant * 10 + tenant);
      assert.deepEqual(calls, [tenant]);
    }
    const stats = engine.stats();
    assert.equal(stats.warmMisses, 1);
    assert.equal(stats.warmHits, 4);
  });

  it("leave the idle instances where they are when a tenant's imports do not link", () => {
    using engine = pooledEngine(2);
    const module = new Module(engine, callerModule());
    for (let round = 0; round < 20; round++) {
      assert.equal(engine.warm(module, 1), 1);
      assert.throws(() => engine.instantiate(module, { env: {} }), LinkError);
    }
    const stats = engine.stats();
    assert.equal(stats.warmIdle, 1, "the idle instance was neither taken nor lost");
    assert.equal(stats.warmHits + stats.warmMisses, 0);
    using instance = engine.instantiate(module, { env: { log: (x: number) => x } });
    assert.equal(fn(instance, "run")(3), 3);
    assert.equal(engine.stats().warmHits, 1);
  });

  it("run the start function for every tenant", () => {
    using engine = pooledEngine();
    const module = new Module(engine, tenantModule({ exportTable: false }));
    for (let i = 0; i < 3; i++) {
      using instance = engine.instantiate(module);
      const bytes = new Uint8Array((instance.exports.memory as GuardedMemory).buffer);
      assert.equal(bytes[START_MARK.offset], START_MARK.value);
      bytes[START_MARK.offset] = 0;
    }
    assert.equal(engine.stats().warmHits, 2);
  });

  it("fall back when a tenant grew a memory or a table, and count it", () => {
    using engine = pooledEngine();
    const module = new Module(engine, tenantModule({ exportTable: false }));
    const a = engine.instantiate(module);
    fn(a, "grow")(1);
    a.dispose();
    const b = engine.instantiate(module);
    assert.equal(fn(b, "size")(), 1, "the next tenant has the initial size");
    assert.equal(fn(b, "growTable")(2), 4);
    b.dispose();
    const c = engine.instantiate(module);
    assert.equal(fn(c, "growTable")(0), 4, "the next tenant has the initial table");
    c.dispose();
    const stats = engine.stats();
    assert.equal(stats.recycleFallbacks, 2);
    assert.equal(stats.warmMisses, 3);
    assert.equal(stats.recycled, 1);
  });

  it("fall back when a tenant passes other global values, or a wasm function", () => {
    using engine = pooledEngine();
    const bytes = buildModule({
      types: [{ params: [], results: ["i32"] }, { params: ["i32"], results: ["i32"] }],
      imports: [
        {
          module: "env",
          name: "g",
          desc: { kind: "global", type: { type: "i32", mutable: false } },
        },
        { module: "env", name: "f", desc: { kind: "function", type: 1 } },
      ],
      functions: [0, 0],
      exports: [
        { name: "get", kind: "function", index: 1 },
        { name: "call", kind: "function", index: 2 },
      ],
      bodies: [
        { code: [...Op.globalGet(0)] },
        { code: [...Op.i32Const(5), ...Op.call(0)] },
      ],
    });
    const module = new Module(engine, bytes);
    assert.equal(module.notRecyclable, null);
    const twice = (x: number) => 2 * x;
    for (const g of [1, 1, 2, 2]) {
      using instance = engine.instantiate(module, { env: { g, f: twice } });
      assert.equal(fn(instance, "get")(), g);
      assert.equal(fn(instance, "call")(), 10);
    }
    let stats = engine.stats();
    assert.equal(stats.warmHits, 1, "the same value again: the same instance");
    assert.equal(stats.ownInstances, 2, "another value: an instance of its own, each time");
    const wasmFunction = new WebAssembly.Instance(
      new WebAssembly.Module(buildModule({
        types: [{ params: ["i32"], results: ["i32"] }],
        functions: [0],
        exports: [{ name: "f", kind: "function", index: 0 }],
        bodies: [{ code: [...Op.localGet(0), ...Op.localGet(0), ...Op.i32Add] }],
      })),
    ).exports.f;
    using linked = engine.instantiate(module, { env: { g: 1, f: wasmFunction } });
    assert.equal(fn(linked, "call")(), 10);
    stats = engine.stats();
    assert.equal(stats.ownInstances, 3, "a wasm function is linked by the runtime");
  });

  it("fall back when a tenant shared its memory with another instance", () => {
    using engine = pooledEngine();
    const exporter = new Module(engine, tenantModule({ exportTable: false }));
    const importer = new Module(engine, peekerModule());
    const a = engine.instantiate(exporter);
    const b = engine.instantiate(importer, { a: { memory: a.exports.memory } });
    fn(a, "store")(300, 9);
    a.dispose();
    assert.equal(fn(b, "peek")(300), 9, "the importer still reads the exporter's memory");
    b.dispose();
    using c = engine.instantiate(exporter);
    assert.equal(fn(c, "load")(300), 0);
    assert.equal(engine.stats().recycleFallbacks, 1);
  });

  it("are not made for a module whose code drops segments, and count it", () => {
    using engine = pooledEngine();
    const module = new Module(
      engine,
      buildModule({
        types: [{ params: [], results: [] }],
        functions: [0],
        memories: [{ min: 1, max: 1, shared: false }],
        data: [{ mode: "passive", data: Uint8Array.of(1) }],
        dataCount: true,
        exports: [{ name: "drop", kind: "function", index: 0 }],
        bodies: [{ code: [...Op.dataDrop(0)] }],
      }),
    );
    assert.match(module.notRecyclable ?? "", /data\.drop/);
    engine.instantiate(module).dispose();
    assert.equal(engine.stats().notRecyclable, 1);
  });

  it("reset only after a call that disposed its own tenant has returned", () => {
    using engine = pooledEngine();
    const bytes = buildModule({
      types: [{ params: [], results: [] }, { params: [], results: ["i32"] }],
      imports: [{ module: "env", name: "quit", desc: { kind: "function", type: 0 } }],
      functions: [1, 1],
      memories: [{ min: 1, max: 1, shared: false }],
      exports: [
        { name: "run", kind: "function", index: 1 },
        { name: "peek", kind: "function", index: 2 },
      ],
      bodies: [
        {
          code: [
            ...Op.i32Const(8),
            ...Op.i32Const(1),
            ...Op.i32Store8,
            ...Op.call(0),
            ...Op.i32Const(9),
            ...Op.i32Const(2),
            ...Op.i32Store8,
            ...Op.i32Const(0),
          ],
        },
        { code: [...Op.i32Const(8), ...Op.i32Load8U] },
      ],
    });
    const module = new Module(engine, bytes);
    let self: Instance | null = null;
    self = engine.instantiate(module, { env: { quit: () => self!.dispose() } });
    assert.throws(() => fn(self!, "run")(), DisposedError);
    using next = engine.instantiate(module, { env: { quit: () => {} } });
    assert.equal(fn(next, "peek")(), 0, "the next tenant sees none of the first's writes");
    assert.equal(engine.stats().warmHits, 1);
  });

  it("reset an instance whose tenant trapped, like any other", () => {
    using engine = pooledEngine();
    const module = new Module(engine, tenantModule({ exportTable: false }));
    const a = engine.instantiate(module);
    fn(a, "store")(700, 7);
    fn(a, "bump")();
    assert.throws(() => fn(a, "callAt")(3, 1, 2), WebAssembly.RuntimeError);
    a.dispose();
    using b = engine.instantiate(module);
    assert.equal(engine.stats().warmHits, 1);
    assert.equal(fn(b, "load")(700), 0);
    assert.equal((b.exports.counter as GuardedGlobal).value, COUNTER_INITIAL);
  });

  it("keep a stale tenant's references from the next tenant's state", () => {
    using engine = pooledEngine(1);
    const module = new Module(engine, tenantModule({ exportTable: false }));
    const a = engine.instantiate(module);
    const staleStore = fn(a, "store");
    const staleMemory = a.exports.memory as GuardedMemory;
    const staleCounter = a.exports.counter as GuardedGlobal;
    a.dispose();
    using b = engine.instantiate(module);
    assert.equal(engine.stats().warmHits, 1, "the same instance serves the next tenant");
    assert.throws(() => staleStore(0, 1), DisposedError);
    assert.throws(() => staleMemory.buffer, DisposedError);
    assert.throws(() => staleCounter.value, DisposedError);
    assert.throws(() => a.exports, DisposedError);
    assert.equal(fn(b, "load")(0), 1);
  });
});

describe("Engine#warm", () => {
  it("makes instances ahead of time that the next instantiations take", () => {
    using engine = pooledEngine();
    const module = new Module(engine, tenantModule({ exportTable: false }));
    assert.equal(engine.warm(module, 3), 3);
    assert.equal(engine.stats().warmIdle, 3);
    const held = [
      engine.instantiate(module),
      engine.instantiate(module),
      engine.instantiate(module),
    ];
    let stats = engine.stats();
    assert.equal(stats.warmHits, 3);
    assert.equal(stats.warmMisses, 0);
    for (const instance of held) instance.dispose();
    assert.equal(engine.warm(module, 2), 3, "three wait already");
    stats = engine.stats();
    assert.equal(stats.warmIdle, 3);
  });

  it("destroys one idle instance, not all, for a memory of another shape at capacity", () => {
    using engine = pooledEngine(6);
    const module = new Module(engine, tenantModule({ exportTable: false }));
    assert.equal(engine.warm(module, 6), 6);
    const other = new Module(
      engine,
      buildModule({ memories: [{ min: 2, max: 2, shared: false }] }),
    );
    using instance = engine.instantiate(other);
    assert.equal(instance.disposed, false);
    const stats = engine.stats();
    assert.equal(stats.warmIdle, 5);
    assert.equal(stats.hostMemoriesEvicted, 1);
  });

  it("refuses a module whose instances cannot be recycled, naming why", () => {
    using engine = pooledEngine();
    // (A module that imports its memory is warmed for reservations: reservation_test.ts.)
    const module = new Module(
      engine,
      buildModule({
        imports: [{
          module: "env",
          name: "counter",
          desc: { kind: "global", type: { type: "i32", mutable: true } },
        }],
      }),
    );
    assert.throws(
      () =>
        engine.warm(module, 1, {
          env: { counter: new WebAssembly.Global({ value: "i32", mutable: true }, 0) },
        }),
      (error: unknown) =>
        error instanceof Error &&
        /cannot be recycled: it imports a mutable global \(env\.counter\)/.test(error.message),
    );
  });
});
