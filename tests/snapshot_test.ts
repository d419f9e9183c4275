// Snapshots at run time (Instance#snapshot, Module#toBytes): a tenant of a snapshot must go on
// exactly as the original instance goes on, whatever runs it (wasmpool on demand, pooled,
// recycled; the runtime's own WebAssembly on toBytes()); tenants never see each other's writes;
// every refusal leaves the instance usable.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  FuelExhaustedError,
  type Instance,
  InstanceAllocationStrategy,
  Module,
  SnapshotError,
} from "../mod.ts";
import { COUNTER_WAT, wat } from "./fixtures/snapshot_modules.ts";

type Fn = (...args: number[]) => number;

const COUNTER = wat(COUNTER_WAT);
const IMPORTS = { env: { host: (): number => 42 } };
const STEPS = 7;
const TENANTS = 10_000;
const LIVE_AT_ONCE = 4;
/** Where the tests write in the counter module's memory: above everything it uses itself. */
const SCRATCH = 8192;

function fn(instance: Instance, name: string): Fn {
  return instance.exports[name] as Fn;
}

function pooled(recycleInstances: boolean, count = 16): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count }, recycleInstances }),
  ));
}

/** Steps `exports` `n` times and records what it can see: state(), total and a few words. */
function trace(exports: Record<string, unknown>, n: number): unknown[] {
  const out: unknown[] = [];
  const f = (name: string): Fn => exports[name] as Fn;
  for (let i = 0; i < n; i++) {
    out.push(f("step")(), f("state")(), f("read")(1024), f("read")(16), f("read")(SCRATCH));
    const total = exports.total as { value: bigint };
    out.push(total.value);
  }
  return out;
}

const ENGINES: [string, () => Engine][] = [
  ["on demand", () => new Engine()],
  ["pooling, dedicated instances", () => pooled(false)],
  ["pooling, recycled instances", () => pooled(true)],
];

describe("Instance#snapshot", () => {
  for (const [name, make] of ENGINES) {
    it(`gives tenants that go on as the original does (${name})`, () => {
      using engine = make();
      const module = new Module(engine, COUNTER);
      using original = engine.instantiate(module, IMPORTS);
      trace(original.exports, STEPS);
      fn(original, "write")(1024, 99); // the start function wrote 7 there: it must not run again
      fn(original, "write")(SCRATCH, 5);
      const snapshot = original.snapshot();
      const expected = trace(original.exports, STEPS);
      for (let round = 0; round < 3; round++) {
        using tenant = engine.instantiate(snapshot, IMPORTS);
        assert.deepEqual(trace(tenant.exports, STEPS), expected);
      }
      // The runtime's own WebAssembly on the standalone binary.
      const plain = new WebAssembly.Instance(new WebAssembly.Module(snapshot.toBytes()), IMPORTS);
      assert.deepEqual(trace(plain.exports as Record<string, unknown>, STEPS), expected);
    });
  }

  it("keeps passive segments usable (memory.init, table.init)", () => {
    using engine = pooled(true);
    using original = engine.instantiate(new Module(engine, COUNTER), IMPORTS);
    trace(original.exports, STEPS);
    const snapshot = original.snapshot();
    fn(original, "initData")(SCRATCH);
    fn(original, "initElem")();
    using tenant = engine.instantiate(snapshot, IMPORTS);
    fn(tenant, "initData")(SCRATCH);
    fn(tenant, "initElem")();
    const bytes = new Uint8Array((tenant.exports.memory as WebAssembly.Memory).buffer, SCRATCH, 7);
    assert.equal(new TextDecoder().decode(bytes), "passive");
    assert.deepEqual(trace(tenant.exports, STEPS), trace(original.exports, STEPS));
  });

  it("makes the memory's current size the snapshot's initial size", () => {
    using engine = pooled(true);
    const module = new Module(engine, COUNTER);
    using original = engine.instantiate(module, IMPORTS);
    assert.equal(fn(original, "grow")(), 1);
    fn(original, "write")(65536 + 8, 77);
    const snapshot = original.snapshot();
    assert.equal(snapshot.notRecyclable, null);
    const before = engine.stats();
    for (let i = 0; i < 3; i++) {
      using tenant = engine.instantiate(snapshot, IMPORTS);
      const memory = tenant.exports.memory as WebAssembly.Memory;
      assert.equal(memory.buffer.byteLength, 2 * 65536);
      assert.equal(fn(tenant, "read")(65536 + 8), 77);
      fn(tenant, "write")(65536 + 8, 1);
    }
    const after = engine.stats();
    assert.equal(after.recycled - before.recycled, 3);
    assert.equal(after.recycleFallbacks, before.recycleFallbacks);
  });

  it(`gives ${TENANTS} recycled tenants that never see each other's writes`, () => {
    using engine = pooled(true);
    const module = new Module(engine, COUNTER);
    using original = engine.instantiate(module, IMPORTS);
    trace(original.exports, STEPS);
    fn(original, "write")(SCRATCH, 1234);
    const snapshot = original.snapshot();
    const first = trace(original.exports, 1);
    const live: Instance[] = [];
    for (let i = 0; i < TENANTS; i++) {
      const tenant = engine.instantiate(snapshot, IMPORTS);
      assert.equal(fn(tenant, "read")(SCRATCH), 1234);
      assert.equal(fn(tenant, "read")(SCRATCH + 4), 0);
      assert.deepEqual(trace(tenant.exports, 1), first);
      fn(tenant, "write")(SCRATCH, i);
      fn(tenant, "write")(SCRATCH + 4, i + 1);
      live.push(tenant);
      if (live.length === LIVE_AT_ONCE) live.shift()!.dispose();
    }
    for (const tenant of live) tenant.dispose();
    assert.ok(engine.stats().warmHits > TENANTS / 2);
  });

  it("takes a snapshot of a snapshot's tenant", () => {
    using engine = pooled(true);
    const module = new Module(engine, COUNTER);
    using original = engine.instantiate(module, IMPORTS);
    trace(original.exports, STEPS);
    using tenant = engine.instantiate(original.snapshot(), IMPORTS);
    trace(tenant.exports, STEPS);
    fn(tenant, "write")(SCRATCH, 3);
    const second = tenant.snapshot();
    const expected = trace(tenant.exports, STEPS);
    using next = engine.instantiate(second, IMPORTS);
    assert.deepEqual(trace(next.exports, STEPS), expected);
  });
});

describe("Instance#snapshot, other shapes", () => {
  it("works with interruption and fuel compiled in (the accessors sit before their functions)", () => {
    using engine = new Engine(
      new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling())
        .withInterruption().withFuel(),
    );
    const module = new Module(engine, COUNTER);
    using original = engine.instantiate(module, IMPORTS, { fuel: 1_000_000, deadlineMs: 10_000 });
    trace(original.exports, STEPS);
    const snapshot = original.snapshot();
    const expected = trace(original.exports, STEPS);
    using tenant = engine.instantiate(snapshot, IMPORTS, { fuel: 1_000_000 });
    assert.deepEqual(trace(tenant.exports, STEPS), expected);
    assert.ok(tenant.fuelConsumed > 0);
  });

  it("captures a module without memory or table, and refuses a disposed instance", () => {
    using engine = new Engine();
    const module = new Module(
      engine,
      wat(`(module (global $n (mut i64) (i64.const -5)) (global $x (mut f32) (f32.const 0.25))
        (func (export "bump") (result i64)
          (global.set $x (f32.mul (global.get $x) (f32.const -3)))
          (global.set $n (i64.add (global.get $n) (i64.const 1000000000000))) (global.get $n))
        (func (export "x") (result f32) (global.get $x)))`),
    );
    const original = engine.instantiate(module);
    fn(original, "bump")();
    const snapshot = original.snapshot();
    const next = [fn(original, "bump")(), fn(original, "x")()];
    using tenant = engine.instantiate(snapshot);
    assert.deepEqual([fn(tenant, "bump")(), fn(tenant, "x")()], next);
    original.dispose();
    assert.throws(() => original.snapshot(), DisposedError);
  });
});

describe("Module#toBytes of a snapshot", () => {
  it("is a standalone binary: valid, no start function, images and recycling in new Module", () => {
    using engine = pooled(true);
    const module = new Module(engine, COUNTER);
    using original = engine.instantiate(module, IMPORTS);
    trace(original.exports, STEPS);
    const bytes = original.snapshot().toBytes();
    const expected = trace(original.exports, STEPS);
    assert.ok(WebAssembly.validate(bytes));
    const compiled = new WebAssembly.Module(bytes);
    assert.deepEqual(
      WebAssembly.Module.imports(compiled).map((i) => `${i.module}.${i.name}`),
      ["env.host"],
    );
    const imageBytes = engine.stats().imageBytes;
    const reloaded = new Module(engine, bytes);
    assert.ok(engine.stats().imageBytes > imageBytes);
    assert.equal(reloaded.notRecyclable, null);
    for (let i = 0; i < 3; i++) {
      using tenant = engine.instantiate(reloaded, IMPORTS);
      assert.deepEqual(trace(tenant.exports, STEPS), expected);
    }
    assert.equal(engine.stats().recycled >= 2, true);
  });
});

describe("Instance#snapshot refuses, and leaves the instance usable", () => {
  for (const [name, make] of ENGINES) {
    it(`a table holding a host function (${name})`, () => {
      using engine = make();
      using instance = engine.instantiate(new Module(engine, COUNTER), IMPORTS);
      fn(instance, "step")();
      fn(instance, "putHost")();
      assert.throws(() => instance.snapshot(), (e) => {
        assert.ok(e instanceof SnapshotError);
        assert.match(e.message, /entry 3 of table 0 holds a host function/);
        return true;
      });
      assert.equal(fn(instance, "step")(), 102);
      fn(instance, "clearHost")();
      using tenant = engine.instantiate(instance.snapshot(), IMPORTS);
      assert.equal(fn(tenant, "step")(), 103);
    });
  }

  it("a table entry or a funcref global holding another instance's function of the module", () => {
    using engine = new Engine();
    const module = new Module(
      engine,
      wat(
        `(module (table (export "tab") 2 funcref) (global (export "g") (mut funcref) (ref.null func))
        (func $f (export "f") (result i32) (i32.const 1)) (elem declare func $f)
        (func (export "own") (table.set (i32.const 0) (ref.func $f)) (global.set 0 (ref.func $f))))`,
      ),
    );
    using a = engine.instantiate(module);
    using b = engine.instantiate(module);
    const table = a.exports.tab as WebAssembly.Table;
    const global = a.exports.g as WebAssembly.Global;
    // b's f has a's f's index: only identity tells them apart.
    table.set(1, b.exports.f as () => number);
    assert.throws(() => a.snapshot(), /entry 1 of table 0 holds a host function or another/);
    table.set(1, null);
    global.value = b.exports.f;
    assert.throws(() => a.snapshot(), /mutable global 0 holds a host function or another/);
    fn(a, "own")();
    using tenant = engine.instantiate(a.snapshot());
    assert.equal((tenant.exports.tab as WebAssembly.Table).get(0)!(), 1);
    assert.equal(((tenant.exports.g as WebAssembly.Global).value as () => number)(), 1);
    assert.equal((tenant.exports.tab as WebAssembly.Table).get(1), null);
  });

  it("a call in progress (a tenant of a recycled instance, from a host import)", () => {
    using engine = pooled(true);
    const module = new Module(engine, COUNTER);
    let self: Instance | null = null;
    let refused: unknown = null;
    const imports = {
      env: {
        host: (): number => {
          try {
            self!.snapshot();
          } catch (error) {
            refused = error;
          }
          return 1;
        },
      },
    };
    using instance = engine.instantiate(module, imports);
    self = instance;
    assert.equal(fn(instance, "callHost")(), 1);
    assert.ok(refused instanceof SnapshotError);
    assert.match((refused as Error).message, /during one of its calls/);
    assert.equal(fn(instance, "step")(), 101);
    using tenant = engine.instantiate(instance.snapshot(), IMPORTS);
    assert.equal(fn(tenant, "step")(), 102);
  });

  it("a poisoned instance (stopped by fuel)", () => {
    using engine = new Engine(
      new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling()).withFuel(),
    );
    const spin = wat(`(module (global $n (mut i32) (i32.const 0))
      (func (export "spin") (loop $l (global.set $n (i32.add (global.get $n) (i32.const 1))) (br $l)))
      (func (export "n") (result i32) (global.get $n)))`);
    using instance = engine.instantiate(new Module(engine, spin), undefined, { fuel: 10_000 });
    assert.throws(() => fn(instance, "spin")(), FuelExhaustedError);
    assert.throws(() => instance.snapshot(), (e) => {
      assert.ok(e instanceof SnapshotError);
      assert.match(e.message, /fuel stopped it/);
      return true;
    });
    assert.equal(instance.disposed, false);
  });

  it("an imported mutable global, and an imported memory", () => {
    using engine = new Engine();
    const global = wat(`(module (import "env" "g" (global $g (mut i32)))
      (func (export "get") (result i32) (global.get $g)))`);
    const g = new WebAssembly.Global({ value: "i32", mutable: true }, 5);
    using a = engine.instantiate(new Module(engine, global), { env: { g } });
    assert.throws(() => a.snapshot(), /imports mutable global env\.g/);
    assert.equal(fn(a, "get")(), 5);
    const memory = wat(`(module (import "env" "m" (memory 1))
      (func (export "get") (result i32) (i32.load (i32.const 0))))`);
    const m = new WebAssembly.Memory({ initial: 1 });
    using b = engine.instantiate(new Module(engine, memory), { env: { m } });
    assert.throws(() => b.snapshot(), SnapshotError);
    assert.equal(fn(b, "get")(), 0);
  });
});
