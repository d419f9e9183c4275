// A tenant's memory size starts where a fresh instance's does (logical_memory.ts): with
// `recycleGrownMemoryPages`, a recycled instance keeps its memory at its grown (physical) size,
// but inside wasm each tenant sees `memory.size` and `memory.grow` as a new instance would.
// Differential against a plain `new WebAssembly.Instance` of the same bytes: a module that
// takes memory as Rust's dlmalloc does (tests/fixtures/code/dlmalloc_like.wat), growth past
// the physical size, the declared maximum and the pool's limit, a memory grown from
// JavaScript, a snapshot module, and with interruption and fuel compiled in.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  Engine,
  type GuardedMemory,
  type Instance,
  InstanceAllocationStrategy,
  Module,
  type PoolingOptions,
} from "../mod.ts";
import { assembleWat } from "./fixtures/wabt.ts";
import { GOLDEN_MODULES } from "./fixtures/rewrite_golden.ts";
import { parseModule } from "../src/module/parse.ts";
import { rewriteModule } from "../src/run/rewrite.ts";

type Fn = (...args: number[]) => unknown;

const WASM_PAGE = 65536;
const BYTES = assembleWat("dlmalloc_like.wat");
const INITIAL_PAGES = 2;
const MAX_PAGES = 40;

function pooledEngine(options: PoolingOptions = {}, config = new Config()): Engine {
  return new Engine(config.withAllocationStrategy(
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count: 8 },
      recycleGrownMemoryPages: 32,
      ...options,
    }),
  ));
}

function plain(): Record<string, unknown> {
  return new WebAssembly.Instance(new WebAssembly.Module(BYTES)).exports;
}

function call(exports: Record<string, unknown>, name: string, ...args: number[]): unknown {
  return (exports[name] as Fn)(...args);
}

function physicalPages(instance: Instance): number {
  return (instance.exports.memory as GuardedMemory).buffer.byteLength / WASM_PAGE;
}

/** One tenant's work: two allocations of `k` pages, then one more of 1, with markers. */
function work(exports: Record<string, unknown>, k: number, marker: number): unknown[] {
  return [
    call(exports, "size"),
    call(exports, "alloc", k, marker),
    call(exports, "alloc", k, marker + 1),
    call(exports, "alloc", 1, marker + 2),
    call(exports, "peek", 16),
  ];
}

describe("logical memory size (recycleGrownMemoryPages)", () => {
  it("gives 1,000 dlmalloc-like tenants a fresh instance's sizes, on one physical growth", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    const N = 1000;
    const K = 3;
    let physicalAfterFirst = -1;
    for (let t = 0; t < N; t++) {
      using tenant = engine.instantiate(module);
      const marker = 1 + 3 * t;
      // The previous tenant's markers were at these addresses: reset, as in a new instance.
      const got = work(tenant.exports, K, marker);
      const want = work(plain(), K, marker);
      assert.deepEqual(got, want, `tenant ${t}`);
      const physical = physicalPages(tenant);
      if (t === 0) physicalAfterFirst = physical;
      else assert.equal(physical, physicalAfterFirst, `tenant ${t}: the physical size grew`);
    }
    assert.equal(physicalAfterFirst, INITIAL_PAGES + 2 * K + 1);
    const stats = engine.stats();
    assert.equal(stats.warmHits, N - 1);
    assert.equal(stats.recycledGrownReplaced, 0);
    assert.equal(stats.recycleFallbacks, 0);
    assert.equal(stats.recycledGrown, N);
  });

  it("grows the real memory past the physical size, and fails as a plain instance does", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    {
      using first = engine.instantiate(module);
      assert.deepEqual(call(first.exports, "alloc", 3, 7), call(plain(), "alloc", 3, 7));
      assert.equal(physicalPages(first), 5);
    }
    using second = engine.instantiate(module);
    const reference = plain();
    // Logical 2 -> 4 (inside the physical 5), then -> 10 (past it: the real memory grows).
    for (const [k, marker] of [[2, 11], [6, 12], [0, 13]]) {
      assert.deepEqual(
        call(second.exports, "alloc", k, marker),
        call(reference, "alloc", k, marker),
        `alloc ${k}`,
      );
    }
    assert.equal(physicalPages(second), 10);
    // Past the declared maximum, and an overflowing delta: -1, the size unchanged.
    for (const k of [MAX_PAGES, 31, -1, 0x7fffffff, 30]) {
      assert.equal(call(second.exports, "grow", k), call(reference, "grow", k), `grow ${k}`);
      assert.equal(call(second.exports, "size"), call(reference, "size"), `size after ${k}`);
    }
    assert.equal(call(second.exports, "size"), MAX_PAGES);
    assert.equal(physicalPages(second), MAX_PAGES);
  });

  it("fails past the pool's memoryPages as the pooled memory does without a logical size", () => {
    const results = [0, 16].map((limit) => {
      using engine = pooledEngine({
        recycleGrownMemoryPages: limit,
        moduleLimits: { memoryPages: 20 },
      });
      const module = new Module(engine, BYTES);
      const out: unknown[] = [];
      for (let t = 0; t < 3; t++) {
        using tenant = engine.instantiate(module);
        out.push(
          call(tenant.exports, "grow", 5),
          call(tenant.exports, "grow", 14),
          call(tenant.exports, "grow", 1),
          call(tenant.exports, "size"),
        );
      }
      return out;
    });
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual(results[0].slice(0, 4), [2, -1, 7, 8]);
  });

  it("switches a module grown from JavaScript to the physical size for later tenants", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    {
      using a = engine.instantiate(module);
      assert.deepEqual(call(a.exports, "alloc", 3, 1), call(plain(), "alloc", 3, 1));
    }
    {
      // Logical 2, physical 5: JavaScript grows the physical memory, as Emscripten's glue does.
      using b = engine.instantiate(module);
      assert.equal(call(b.exports, "size"), 2);
      const memory = b.exports.memory as GuardedMemory;
      assert.equal(memory.grow(1), 5);
      assert.equal(memory.buffer.byteLength, 6 * WASM_PAGE);
      assert.equal(call(b.exports, "size"), 6);
      assert.deepEqual(call(b.exports, "alloc", 1, 2), [6, 7, 0, 1]);
    }
    for (let t = 0; t < 3; t++) {
      using c = engine.instantiate(module);
      assert.equal(call(c.exports, "size"), 7, `tenant ${t} starts at the physical size`);
      assert.equal(physicalPages(c), 7);
      assert.deepEqual(call(c.exports, "alloc", 0, 0), [7, 7, 0, 1]);
    }
    assert.equal(engine.stats().recycledGrownReplaced, 0);
  });

  it("starts a snapshot module's tenants at its size", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    using original = engine.instantiate(module);
    call(original.exports, "alloc", 2, 5); // 2 -> 4 pages
    const snapshot = original.snapshot();
    const reference = new WebAssembly.Instance(new WebAssembly.Module(snapshot.toBytes())).exports;
    const want = work(reference, 2, 40);
    for (let t = 0; t < 4; t++) {
      using tenant = engine.instantiate(snapshot);
      assert.equal(call(tenant.exports, "size"), 4);
      assert.deepEqual(work(tenant.exports, 2, 40), want, `snapshot tenant ${t}`);
    }
    assert.equal(engine.stats().recycledGrownReplaced, 0);
  });

  it("snapshots a recycled tenant at its logical size, not the physical one", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    {
      using first = engine.instantiate(module);
      call(first.exports, "alloc", 6, 1); // physical 8
    }
    using tenant = engine.instantiate(module);
    assert.deepEqual(call(tenant.exports, "alloc", 1, 9), [2, 3, 0, 1]);
    assert.equal(physicalPages(tenant), 8);
    const snapshot = tenant.snapshot();
    const reference = new WebAssembly.Instance(new WebAssembly.Module(snapshot.toBytes())).exports;
    assert.equal(call(reference, "size"), 3);
    assert.equal(call(reference, "peek", 2 * WASM_PAGE), 9);
    const want = work(reference, 2, 40);
    for (let t = 0; t < 3; t++) {
      using next = engine.instantiate(snapshot);
      assert.equal(physicalPages(next) >= 3, true);
      assert.deepEqual(work(next.exports, 2, 40), want, `snapshot tenant ${t}`);
    }
  });

  it("behaves the same with interruption and fuel compiled in", () => {
    using engine = pooledEngine({}, new Config().withInterruption().withFuel());
    const module = new Module(engine, BYTES);
    for (let t = 0; t < 20; t++) {
      using tenant = engine.instantiate(module, undefined, { fuel: 1_000_000 });
      const reference = plain();
      assert.deepEqual(work(tenant.exports, 2, t + 1), work(reference, 2, t + 1), `tenant ${t}`);
      assert.equal(call(tenant.exports, "growLoop", 3), call(reference, "growLoop", 3));
    }
    assert.equal(engine.stats().warmHits, 19);
    assert.equal(engine.stats().recycledGrownReplaced, 0);
  });

  it("rewrites byte for byte as before without the option, or without a memory.grow 0", () => {
    const rewrite = (bytes: Uint8Array, logicalMemory: boolean) => {
      const parsed = parseModule(bytes);
      return rewriteModule(bytes, parsed, {
        memories: parsed.memories.map((m) => ({ min: m.min, max: m.max ?? 160 })),
        emptyData: () => false,
        recycle: true,
        logicalMemory,
      });
    };
    for (const [name, build] of Object.entries(GOLDEN_MODULES)) {
      const bytes = build();
      const logical = rewrite(bytes, true);
      const grows = parseModule(bytes).memories.length > 0 && logical.facts.memoryGrows > 0;
      assert.equal(logical.logical, grows, name);
      if (!grows) assert.deepEqual(logical.bytes, rewrite(bytes, false).bytes, name);
    }
    const changed = rewrite(BYTES, true);
    assert.equal(changed.logical, true);
    assert.notDeepEqual(changed.bytes, rewrite(BYTES, false).bytes);
    assert.ok(WebAssembly.validate(changed.bytes));
  });

  it("replaces instances with recycleGrownMemoryPages 0, and computes what plain ones do", () => {
    using engine = pooledEngine({ recycleGrownMemoryPages: 0 });
    const module = new Module(engine, BYTES);
    for (let t = 0; t < 3; t++) {
      using tenant = engine.instantiate(module);
      assert.deepEqual(work(tenant.exports, 1, 3), work(plain(), 1, 3));
    }
    assert.equal(engine.stats().recycledGrown, 0);
  });
});
