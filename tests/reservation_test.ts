// Reservations (`engine.reserve(module)`): the memories a module imports, pooled and holding
// the module's data before the instance exists, as Emscripten's glue needs them. Every tenant
// must see exactly what `new WebAssembly.Instance` with a fresh `WebAssembly.Memory` shows, never
// a previous tenant's bytes; a memory the user brings to plain `instantiate` must get the data
// exactly as the runtime puts it. Runs unchanged under `deno test` and `bun test`.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  InstanceAllocationStrategy,
  LimitError,
  LinkError,
  Module,
  OutOfBoundsError,
  PoolExhaustedError,
  type Reservation,
  UnsupportedFeatureError,
} from "../mod.ts";
import { collectUntil } from "./fixtures/gc.ts";
import { prng } from "./fixtures/prng.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

type Fn = (...args: number[]) => number;

const PAGE = 65536;
const HELLO = new TextEncoder().encode("image bytes at 16");
const SECOND = new TextEncoder().encode("and on the second page");

/**
 * Imports `env.note(i32)` and its memory as `a.a` (2 pages, at most 4), like Emscripten's
 * minified glue; data at 16 and at 70000; exports store8, load8, grow, size, and `noted`, which
 * calls the import with a byte of the image.
 */
function importedMemoryModule(
  options: { min?: number; max?: number; at?: number; name?: string } = {},
): Uint8Array<ArrayBuffer> {
  const local = (i: number): number[] => [0x20, i];
  return buildModule({
    types: [
      { params: ["i32", "i32"], results: [] },
      { params: ["i32"], results: ["i32"] },
      { params: [], results: ["i32"] },
      { params: ["i32"], results: [] },
    ],
    imports: [
      { module: "env", name: "note", desc: { kind: "function", type: 3 } },
      {
        module: options.name ?? "a",
        name: options.name ?? "a",
        desc: {
          kind: "memory",
          type: { min: options.min ?? 2, max: options.max ?? 4, shared: false },
        },
      },
    ],
    functions: [0, 1, 1, 2, 2],
    bodies: [
      { code: [...local(0), ...local(1), 0x3a, 0, 0] },
      { code: [...local(0), 0x2d, 0, 0] },
      { code: [...local(0), 0x40, 0x00] },
      { code: [0x3f, 0x00] },
      { code: [0x41, 16, 0x2d, 0, 0, 0x10, 0, 0x41, 1] },
    ],
    exports: [
      { name: "store8", kind: "function", index: 1 },
      { name: "load8", kind: "function", index: 2 },
      { name: "grow", kind: "function", index: 3 },
      { name: "size", kind: "function", index: 4 },
      { name: "noted", kind: "function", index: 5 },
    ],
    data: [
      { mode: "active", offset: { kind: "i32.const", value: 16 }, data: HELLO },
      {
        mode: "active",
        offset: { kind: "i32.const", value: options.at ?? 70000 },
        data: SECOND,
      },
    ],
  });
}

function pooledEngine(count = 4, recycleInstances = true): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count },
      moduleLimits: { importedMemories: 1, memoryPages: 16 },
      recycleInstances,
    }),
  ));
}

/** The bytes a plain instance's fresh memory holds after instantiation. */
function plainBytes(bytes: Uint8Array<ArrayBuffer>): Uint8Array {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 4 });
  new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    a: { a: memory },
    env: { note: () => {} },
  });
  return new Uint8Array(memory.buffer).slice();
}

function imports(reservation: Reservation, note: (b: number) => void = () => {}) {
  return { a: { a: reservation.memory }, env: { note } };
}

describe("reservations", () => {
  for (const recycle of [true, false]) {
    it(
      `give every tenant exactly a fresh memory's image, never a previous tenant's bytes${
        recycle ? "" : " (recycleInstances: false)"
      }`,
      () => {
        using engine = pooledEngine(4, recycle);
        const bytes = importedMemoryModule();
        const expected = plainBytes(bytes);
        const module = new Module(engine, bytes);
        const random = prng(7);
        const tenants = 60;
        for (let t = 0; t < tenants; t++) {
          using reservation = engine.reserve(module);
          // The glue reads the memory before it instantiates: the image is there already.
          assert.deepEqual(new Uint8Array(reservation.memory.buffer), expected);
          const noted: number[] = [];
          using instance = reservation.instantiate(imports(reservation, (b) => noted.push(b)));
          const view = new Uint8Array(reservation.memory.buffer);
          assert.deepEqual(view, expected, `tenant ${t}`);
          assert.equal((instance.exports.noted as Fn)(), 1);
          assert.deepEqual(noted, [HELLO[0]]);
          // Marks left for the next tenant to (not) see: by the code and through the buffer.
          for (let i = 0; i < 8; i++) {
            (instance.exports.store8 as Fn)(Math.floor(random() * 2 * PAGE), 0xa5);
            view[Math.floor(random() * 2 * PAGE)] = 0x5a;
          }
          view.set(SECOND, 16);
        }
        const stats = engine.stats();
        assert.equal(stats.warmMisses, recycle ? 1 : 0);
        assert.equal(stats.warmHits, recycle ? tenants - 1 : 0);
        assert.equal(stats.recycled, recycle ? tenants : 0);
        assert.equal(stats.notRecyclable, recycle ? 0 : tenants);
        assert.equal(stats.hostMemoriesCreated, 1);
        assert.equal(stats.runningInstances, 0);
      },
    );
  }

  it("are served by instances engine.warm made ahead of time", () => {
    using engine = pooledEngine();
    const bytes = importedMemoryModule();
    const module = new Module(engine, bytes);
    assert.equal(engine.warm(module, 3), 3);
    assert.equal(engine.stats().warmIdle, 3);
    for (let t = 0; t < 3; t++) {
      using reservation = engine.reserve(module);
      assert.deepEqual(new Uint8Array(reservation.memory.buffer), plainBytes(bytes));
    }
    const stats = engine.stats();
    assert.equal(stats.warmHits, 3);
    assert.equal(stats.warmMisses, 0);
    using plain = pooledEngine(4, false);
    assert.throws(
      () => plain.warm(new Module(plain, bytes), 1),
      (error) => error instanceof UnsupportedFeatureError && /recycleInstances/.test(error.message),
    );
  });

  it("replace a tenant's instance that grew the memory; the next tenant starts at 2 pages", () => {
    using engine = pooledEngine();
    const bytes = importedMemoryModule();
    const expected = plainBytes(bytes);
    const module = new Module(engine, bytes);
    {
      using reservation = engine.reserve(module);
      const before = reservation.memory.buffer;
      // Emscripten's emscripten_resize_heap: grow through the memory object, read buffer again.
      assert.equal(reservation.memory.grow(1), 2);
      assert.equal(before.byteLength, 0);
      using instance = reservation.instantiate(imports(reservation));
      assert.equal((instance.exports.size as Fn)(), 3);
      assert.equal(reservation.memory.buffer.byteLength, 3 * PAGE);
      assert.equal((instance.exports.grow as Fn)(1), 3);
      assert.equal(reservation.memory.buffer.byteLength, 4 * PAGE);
    }
    using reservation = engine.reserve(module);
    using instance = reservation.instantiate(imports(reservation));
    assert.equal((instance.exports.size as Fn)(), 2);
    assert.deepEqual(new Uint8Array(reservation.memory.buffer), expected);
    assert.equal(engine.stats().recycleFallbacks, 1);
  });

  it("end with the instance's dispose: buffers detached, the memory throws DisposedError", () => {
    using engine = pooledEngine();
    const module = new Module(engine, importedMemoryModule());
    const reservation = engine.reserve(module);
    const instance = reservation.instantiate(imports(reservation));
    const buffer = reservation.memory.buffer;
    reservation.dispose(); // instantiated: the instance ends it, not this
    assert.equal(buffer.byteLength, 2 * PAGE);
    instance.dispose();
    assert.equal(buffer.byteLength, 0);
    assert.throws(() => reservation.memory.buffer, DisposedError);
    assert.throws(() => reservation.memory.grow(1), DisposedError);
    assert.throws(() => reservation.instantiate(imports(reservation)), DisposedError);
  });

  it("give everything back when disposed without instantiating: the pool fills to its limit", () => {
    const count = 3;
    for (const recycle of [true, false]) {
      using engine = pooledEngine(count, recycle);
      const module = new Module(engine, importedMemoryModule());
      const held = Array.from({ length: count }, () => engine.reserve(module));
      assert.throws(
        () => engine.reserve(module),
        (error) =>
          error instanceof PoolExhaustedError &&
          error.message === `Limit of ${count} concurrent instances has been reached`,
      );
      const buffer = held[0].memory.buffer;
      new Uint8Array(buffer)[100] = 1; // written before instantiation: reset all the same
      for (const reservation of held) reservation.dispose();
      assert.equal(buffer.byteLength, 0);
      held[0].dispose(); // a second dispose does nothing
      assert.throws(() => held[0].memory.buffer, DisposedError);
      assert.throws(() => held[0].instantiate(imports(held[0])), DisposedError);
      assert.equal(engine.stats().liveInstances, 0);
      // Every slot is free: instances and reservations together fill the pool again.
      const live = [
        ...Array.from({ length: count - 1 }, () => engine.reserve(module)),
      ].map((r) => r.instantiate(imports(r)));
      const last = engine.reserve(module);
      assert.equal(new Uint8Array(last.memory.buffer)[100], 0);
      assert.throws(() => engine.instantiate(module, imports(last)), PoolExhaustedError);
      last.dispose();
      for (const instance of live) instance.dispose();
      const stats = engine.stats();
      assert.equal(stats.liveInstances, 0);
      assert.equal(stats.runningInstances, 0);
    }
  });

  it("give an instance of its own, on the reserved memory, to a tenant passing a wasm function", () => {
    using engine = pooledEngine();
    const bytes = importedMemoryModule();
    const module = new Module(engine, bytes);
    // A wasm function as the import: the runtime must link it, so no warm instance serves it.
    const wasmNote = new WebAssembly.Instance(
      new WebAssembly.Module(buildModule({
        types: [{ params: ["i32"], results: [] }],
        functions: [0],
        exports: [{ name: "note", kind: "function", index: 0 }],
      })),
    ).exports.note;
    for (let t = 0; t < 3; t++) {
      using reservation = engine.reserve(module);
      const buffer = reservation.memory.buffer;
      using instance = reservation.instantiate({
        a: { a: reservation.memory },
        env: { note: wasmNote },
      });
      assert.deepEqual(new Uint8Array(reservation.memory.buffer), plainBytes(bytes));
      assert.equal(reservation.memory.buffer, buffer);
      (instance.exports.store8 as Fn)(16, 0xee);
      assert.equal(new Uint8Array(buffer)[16], 0xee);
      assert.equal((instance.exports.noted as Fn)(), 1);
    }
    assert.equal(engine.stats().ownInstances, 3);
    assert.equal(engine.stats().liveInstances, 0);
  });

  it("run with interruption and fuel compiled in", () => {
    using engine = new Engine(
      new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
        instanceLimits: { count: 2 },
        moduleLimits: { importedMemories: 1, memoryPages: 16 },
      })).withInterruption().withFuel(),
    );
    const bytes = importedMemoryModule();
    const module = new Module(engine, bytes);
    for (let t = 0; t < 3; t++) {
      using reservation = engine.reserve(module);
      using instance = reservation.instantiate(imports(reservation), {
        deadlineMs: 1000,
        fuel: 1000,
      });
      assert.deepEqual(new Uint8Array(reservation.memory.buffer), plainBytes(bytes));
      (instance.exports.store8 as Fn)(16, 1);
      assert.ok(instance.fuelConsumed > 0);
    }
    assert.equal(engine.stats().warmHits, 2);
  });

  it("give everything back when collected without dispose()", async () => {
    using engine = pooledEngine(3);
    const module = new Module(engine, importedMemoryModule());
    (() => {
      for (let i = 0; i < 3; i++) new Uint8Array(engine.reserve(module).memory.buffer)[200] = 1;
    })();
    assert.equal(engine.stats().liveInstances, 3);
    assert.ok(await collectUntil(() => engine.stats().liveInstances === 0), "slots not returned");
    using reservation = engine.reserve(module);
    assert.equal(new Uint8Array(reservation.memory.buffer)[200], 0);
  });

  it("refuse imports that carry another memory, naming the import, and stay usable", () => {
    using engine = pooledEngine();
    const module = new Module(engine, importedMemoryModule({ name: "env2" }));
    using reservation = engine.reserve(module);
    const foreign = new WebAssembly.Memory({ initial: 2, maximum: 4 });
    for (const memory of [foreign, undefined, engine.reserve(module)]) {
      assert.throws(
        () => reservation.instantiate({ env2: { env2: memory }, env: { note: () => {} } }),
        (error) =>
          error instanceof LinkError && error.message.includes(`"env2"."env2"`) &&
          error.message.includes("reservation.memories[0]"),
      );
      if (memory !== undefined && !(memory instanceof WebAssembly.Memory)) memory.dispose();
    }
    using instance = reservation.instantiate({
      env2: { env2: reservation.memory },
      env: { note: () => {} },
    });
    assert.equal((instance.exports.load8 as Fn)(16), HELLO[0]);
  });

  it("refuse what the pool cannot hold, naming the limit", () => {
    using engine = pooledEngine();
    assert.throws(
      () => engine.reserve(new Module(engine, importedMemoryModule({ min: 17, max: 20 }))),
      (error) =>
        error instanceof LimitError &&
        error.message ===
          "memory index 0 has a minimum page size of 17 which exceeds the limit of 16",
    );
    assert.throws(
      () => engine.reserve(new Module(engine, buildModule({}))),
      (error) =>
        error instanceof UnsupportedFeatureError && /imports no memory/.test(error.message),
    );
    using noDefined = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({ moduleLimits: { importedMemories: 1, memories: 0 } }),
    ));
    assert.throws(
      () => noDefined.reserve(new Module(noDefined, importedMemoryModule())),
      (error) => error instanceof LimitError && /moduleLimits\.memories of 0/.test(error.message),
    );
    assert.equal(engine.stats().liveInstances, 0);
  });

  it("work on demand, with fresh memories holding the data", () => {
    using engine = new Engine();
    const bytes = importedMemoryModule();
    const module = new Module(engine, bytes);
    for (let t = 0; t < 3; t++) {
      using reservation = engine.reserve(module);
      using instance = reservation.instantiate(imports(reservation));
      assert.deepEqual(new Uint8Array(reservation.memory.buffer), plainBytes(bytes));
      (instance.exports.store8 as Fn)(16, 0);
    }
    assert.equal(engine.stats().runningInstances, 0);
  });

  it("apply segments an image cannot hold at instantiation, failing as the runtime does", () => {
    using engine = pooledEngine(2);
    // A segment past the declared minimum: bounds are checked against the memory at hand.
    const bytes = importedMemoryModule({ min: 1, at: 3 * PAGE });
    const module = new Module(engine, bytes);
    assert.throws(
      () => new WebAssembly.Instance(new WebAssembly.Module(bytes), plainImports(1)),
      WebAssembly.RuntimeError,
    );
    for (let t = 0; t < 3; t++) {
      const reservation = engine.reserve(module);
      assert.throws(
        () => reservation.instantiate(imports(reservation)),
        (error) => error instanceof WebAssembly.RuntimeError || error instanceof OutOfBoundsError,
      );
      assert.throws(() => reservation.memory.buffer, DisposedError);
    }
    assert.equal(engine.stats().liveInstances, 0);
    // Grown to 4 pages before instantiation, the segment fits: applied by the runtime.
    using reservation = engine.reserve(module);
    reservation.memory.grow(3);
    using instance = reservation.instantiate(imports(reservation));
    assert.equal((instance.exports.load8 as Fn)(3 * PAGE), SECOND[0]);
    assert.equal((instance.exports.load8 as Fn)(16), HELLO[0]);
  });
});

function plainImports(pages: number): WebAssembly.Imports {
  return {
    a: { a: new WebAssembly.Memory({ initial: pages, maximum: 4 }) },
    env: { note: () => {} },
  };
}

describe("a memory the user brings to instantiate", () => {
  it("gets the data segments exactly as the runtime puts them, the rest untouched", () => {
    for (const engine of [pooledEngine(), new Engine()]) {
      using _ = engine;
      const bytes = importedMemoryModule();
      const module = new Module(engine, bytes);
      const filled = (): WebAssembly.Memory => {
        const memory = new WebAssembly.Memory({ initial: 3, maximum: 4 });
        const view = new Uint8Array(memory.buffer);
        for (let i = 0; i < view.length; i++) view[i] = (i * 31) & 0xff;
        return memory;
      };
      const theirs = filled();
      new WebAssembly.Instance(new WebAssembly.Module(bytes), {
        a: { a: theirs },
        env: { note: () => {} },
      });
      const mine = filled();
      using instance = engine.instantiate(module, { a: { a: mine }, env: { note: () => {} } });
      assert.deepEqual(new Uint8Array(mine.buffer), new Uint8Array(theirs.buffer));
      assert.equal((instance.exports.load8 as Fn)(16), HELLO[0]);
    }
  });

  it("fails for an out-of-bounds segment as the runtime does", () => {
    using engine = pooledEngine();
    const bytes = importedMemoryModule({ min: 1, at: 3 * PAGE });
    const module = new Module(engine, bytes);
    assert.throws(
      () => engine.instantiate(module, plainImports(1)),
      (error) => error instanceof WebAssembly.RuntimeError || error instanceof OutOfBoundsError,
    );
    assert.equal(engine.stats().liveInstances, 0);
    assert.notEqual(module.notRecyclable, null);
  });
});
