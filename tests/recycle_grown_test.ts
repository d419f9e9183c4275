// Recycled instances whose tenant grew a memory (`PoolingOptions.recycleGrownMemoryPages`):
// kept when the memory grew in place to at most the limit, and then the next tenant sees the
// grown size and, in the whole memory, exactly what a new instance grown to that size holds
// (the image, zeros past it), never a byte of an earlier tenant; replaced and counted past the
// limit and with the default 0; a memory the runtime moved when it grew (JavaScriptCore's heap
// memories) is adopted again at its new address and restored wholly. Inside wasm, a tenant
// sees the module's initial size (the logical size, tests/logical_memory_test.ts) unless a
// tenant grew the memory from JavaScript: then the physical size.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError,
  Config,
  Engine,
  type GuardedMemory,
  type Instance,
  InstanceAllocationStrategy,
  Module,
  type PoolingOptions,
} from "../mod.ts";
import { native } from "../src/ffi/load.ts";
import { prng } from "./fixtures/prng.ts";
import { Op, tenantModule } from "./fixtures/run_modules.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

type Fn = (...args: number[]) => number;

const WASM_PAGE = 65536;
const MAX_PAGES = 16;
const LIMIT_PAGES = 8;
const BYTES = tenantModule({ exportTable: false, maxPages: MAX_PAGES });

function pooledEngine(options: PoolingOptions = {}): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count: 32 }, ...options }),
  ));
}

function fn(instance: Instance, name: string): Fn {
  return instance.exports[name] as Fn;
}

function bytesOf(instance: Instance): Uint8Array {
  return new Uint8Array((instance.exports.memory as GuardedMemory).buffer);
}

/** What a new instance of the module on the runtime's own engine holds at `pages` pages. */
function plainBytes(pages: number): Uint8Array {
  const plain = new WebAssembly.Instance(new WebAssembly.Module(BYTES));
  const memory = plain.exports.memory as WebAssembly.Memory;
  memory.grow(pages - memory.buffer.byteLength / WASM_PAGE);
  return new Uint8Array(memory.buffer);
}

/** The first byte where `got` and `want` differ, for a short failure message; -1 if none. */
function firstDifference(got: Uint8Array, want: Uint8Array): number {
  if (got.length !== want.length) return Math.min(got.length, want.length);
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return i;
  return -1;
}

/**
 * Checks that `instance` has `pages` pages holding what a new instance grown to them holds, and
 * that its code sees `size` pages (the logical size: the initial one, or after a grow from
 * JavaScript the physical one).
 */
function assertFresh(instance: Instance, pages: number, what: string, size = pages): void {
  assert.equal(fn(instance, "size")(), size, `${what}: memory.size`);
  const bytes = bytesOf(instance);
  assert.equal(bytes.byteLength, pages * WASM_PAGE, `${what}: buffer.byteLength`);
  const at = firstDifference(bytes, plainBytes(pages));
  assert.equal(at, -1, `${what}: byte ${at} is ${bytes[at]}, not a new instance's`);
}

/** A tenant's writes: a marker in every byte of the memory, through JS and through wasm. */
function dirty(instance: Instance, marker: number): void {
  const bytes = bytesOf(instance);
  bytes.fill(marker);
  for (let at = 0; at < bytes.length; at += 4093) fn(instance, "store")(at, marker ^ 0x55);
}

const lib = native();

function addressOf(instance: Instance): number {
  return lib.address(lib.pointerOf(bytesOf(instance))!);
}

/**
 * Grows the tenant's memory by `delta` pages, through wasm's `memory.grow` or the exported
 * memory's `grow`, and says whether the runtime moved it: never in V8; in JavaScriptCore,
 * unless it is one of the first few memories the process holds (which earlier tests decide).
 */
function growMoved(instance: Instance, delta: number, viaExport = false): boolean {
  const before = addressOf(instance);
  const old = viaExport
    ? (instance.exports.memory as GuardedMemory).grow(delta)
    : fn(instance, "grow")(delta);
  assert.ok(old >= 1);
  const moved = addressOf(instance) !== before;
  if (lib.runtime === "deno") assert.equal(moved, false, "V8 grows every memory in place");
  return moved;
}

describe("recycleGrownMemoryPages", () => {
  it("keeps an instance grown within the limit: the next tenant sees the grown size, the image and zeros", () => {
    using engine = pooledEngine({ recycleGrownMemoryPages: LIMIT_PAGES });
    const module = new Module(engine, BYTES);
    const random = prng(0x960e);
    const CYCLES = 60;
    let pages = 1;
    let grown = 0;
    let moved = 0;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      using tenant = engine.instantiate(module);
      // The first grow (cycle 1) is from JavaScript: the tenants' size is the physical one.
      assertFresh(tenant, pages, `tenant ${cycle}`);
      dirty(tenant, 1 + cycle % 250);
      const delta = Math.min(Math.floor(random() * 3), LIMIT_PAGES - pages);
      // Both ways a program grows: wasm's memory.grow, and the exported memory's grow.
      if (delta > 0 && growMoved(tenant, delta, cycle % 2 === 1)) moved += 1;
      pages += delta;
      if (pages > 1) grown += 1;
      dirty(tenant, 1 + (cycle + 100) % 250); // the grown pages too
    }
    const stats = engine.stats();
    assert.ok(grown > CYCLES / 2, `${grown} tenancies ended grown`);
    assert.equal(stats.recycledGrown, grown);
    assert.equal(stats.recycledGrownReplaced, 0);
    assert.equal(stats.recycleFallbacks, 0);
    assert.equal(stats.warmHits, CYCLES - 1);
    assert.equal(stats.recycled, CYCLES);
    assert.equal(stats.hostMemoriesReplaced, 0);
    assert.equal(stats.hostMemoriesReadopted, moved);
  });

  it("keeps grown instances with resets on the reset thread, two warm", () => {
    using engine = pooledEngine({ recycleGrownMemoryPages: LIMIT_PAGES, backgroundResets: true });
    const module = new Module(engine, BYTES);
    engine.warm(module, 2);
    const random = prng(0xb6);
    const CYCLES = 200;
    let moved = 0;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      using tenant = engine.instantiate(module);
      // Two instances take turns, each at its own size: whatever it is, the memory is clean;
      // the code sees the initial size (grown from wasm only).
      const pages = bytesOf(tenant).byteLength / WASM_PAGE;
      assert.ok(pages >= 1 && pages <= LIMIT_PAGES);
      assertFresh(tenant, pages, `tenant ${cycle}`, 1);
      dirty(tenant, 1 + cycle % 250);
      // Past the physical size now and then: the real memory grows.
      const delta = Math.min(Math.floor(random() * 2) * pages, LIMIT_PAGES - 1);
      if (delta > 0 && growMoved(tenant, delta)) moved += 1;
      dirty(tenant, 2 + cycle % 250);
    }
    const stats = engine.stats();
    assert.equal(stats.recycleFallbacks, 0);
    assert.equal(stats.recycledGrownReplaced, 0);
    assert.equal(stats.hostMemoriesReadopted, moved);
    assert.ok(stats.recycledGrown > CYCLES / 2, `recycledGrown ${stats.recycledGrown}`);
    assert.equal(stats.hostMemoriesFailed, 0);
  });

  it("restores, after the grown pages are taken in, only the pages a tenant wrote", () => {
    using engine = pooledEngine({ recycleGrownMemoryPages: LIMIT_PAGES });
    const module = new Module(engine, BYTES);
    const a = engine.instantiate(module);
    const moved = growMoved(a, 4);
    dirty(a, 7);
    a.dispose();
    const before = engine.stats().hostPagesRestored;
    const b = engine.instantiate(module);
    // Only writes: a page read maps the zero page, which a scan reports as well.
    fn(b, "store")(3 * WASM_PAGE + 5, 1); // a grown page; the start function wrote page 0
    b.dispose();
    const stats = engine.stats();
    if (stats.hostWriteTracking === "tracked") {
      assert.equal(stats.hostPagesRestored - before, 2, "host pages restored after b");
    }
    using c = engine.instantiate(module);
    assertFresh(c, 5, "after b", 1);
    assert.equal(stats.hostMemoriesReadopted, moved ? 1 : 0);
  });

  it("replaces an instance grown past the limit, and counts it", () => {
    using engine = pooledEngine({ recycleGrownMemoryPages: LIMIT_PAGES });
    const module = new Module(engine, BYTES);
    const a = engine.instantiate(module);
    growMoved(a, LIMIT_PAGES); // to LIMIT_PAGES + 1: replaced, moved or not
    dirty(a, 9);
    a.dispose();
    const b = engine.instantiate(module);
    assertFresh(b, 1, "after a replaced tenant");
    dirty(b, 10);
    growMoved(b, LIMIT_PAGES - 1); // exactly the limit: kept, moved or not
    b.dispose();
    using c = engine.instantiate(module);
    assertFresh(c, LIMIT_PAGES, "after b", 1);
    const stats = engine.stats();
    assert.equal(stats.recycledGrownReplaced, 1);
    assert.equal(stats.recycleFallbacks, 1);
    assert.equal(stats.recycledGrown, 1);
    assert.equal(stats.warmMisses, 2);
    // A grown memory is not pooled for another instance at its declared shape.
    assert.equal(stats.hostMemoriesReplaced, 1);
  });

  it("with the default 0, replaces every instance whose memory grew, as before", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    for (let i = 0; i < 3; i++) {
      using tenant = engine.instantiate(module);
      assertFresh(tenant, 1, `tenant ${i}`);
      dirty(tenant, 3);
      growMoved(tenant, 1);
      dirty(tenant, 4);
    }
    const stats = engine.stats();
    assert.equal(stats.recycleFallbacks, 3);
    assert.equal(stats.recycledGrownReplaced, 3);
    assert.equal(stats.recycledGrown, 0);
    assert.equal(stats.warmMisses, 3);
    assert.equal(stats.hostMemoriesReplaced, 3);
  });

  it("keeps memories the runtime grew in place, and adopts again those it moved (JavaScriptCore's heap memories)", () => {
    // Many memories alive at once: in Bun only the first few get a fixed reservation.
    const LIVE = 24;
    using engine = pooledEngine({ recycleGrownMemoryPages: LIMIT_PAGES });
    const module = new Module(engine, BYTES);
    const tenants = Array.from({ length: LIVE }, () => engine.instantiate(module));
    let inPlace = 0;
    for (const [i, tenant] of tenants.entries()) {
      dirty(tenant, 20 + i);
      if (!growMoved(tenant, 3)) inPlace += 1;
      dirty(tenant, 60 + i);
    }
    if (lib.runtime === "deno") assert.equal(inPlace, LIVE, "V8 reserves every memory in place");
    else assert.ok(inPlace < LIVE, "JavaScriptCore moves most memories on grow");
    for (const tenant of tenants) tenant.dispose();
    let stats = engine.stats();
    assert.equal(stats.recycledGrown, LIVE);
    assert.equal(stats.hostMemoriesReadopted, LIVE - inPlace);
    assert.equal(stats.recycledGrownReplaced, 0);
    assert.equal(stats.recycleFallbacks, 0);
    // The next tenants: every instance was kept, each memory holding its image and zeros only.
    const next = Array.from({ length: LIVE }, () => engine.instantiate(module));
    for (const [i, tenant] of next.entries()) assertFresh(tenant, 4, `next tenant ${i}`, 1);
    // They write and grow again, from their size 1 past the physical 4: moved memories move
    // again, and are adopted again.
    let movedAgain = 0;
    for (const [i, tenant] of next.entries()) {
      dirty(tenant, 100 + i);
      if (growMoved(tenant, 4)) movedAgain += 1;
      dirty(tenant, 140 + i);
    }
    for (const tenant of next) tenant.dispose();
    stats = engine.stats();
    assert.equal(stats.warmHits, LIVE);
    assert.equal(stats.recycleFallbacks, 0);
    assert.equal(stats.hostMemoriesReadopted, LIVE - inPlace + movedAgain);
    for (let i = 0; i < LIVE; i++) {
      using tenant = engine.instantiate(module);
      assertFresh(tenant, 5, `third tenant ${i}`, 1);
    }
  });

  it("keeps a memory declared with 0 pages once it grew", () => {
    const bytes = buildModule({
      types: [{ params: ["i32"], results: ["i32"] }, { params: ["i32", "i32"], results: ["i32"] }],
      functions: [0, 1],
      memories: [{ min: 0, max: 4, shared: false }],
      exports: [
        { name: "grow", kind: "function", index: 0 },
        { name: "store", kind: "function", index: 1 },
        { name: "memory", kind: "memory", index: 0 },
      ],
      bodies: [
        { code: [...Op.localGet(0), ...Op.memoryGrow] },
        { code: [...Op.localGet(0), ...Op.localGet(1), ...Op.i32Store8, ...Op.i32Const(0)] },
      ],
    });
    using engine = pooledEngine({ recycleGrownMemoryPages: 2 });
    const module = new Module(engine, bytes);
    for (let i = 0; i < 3; i++) {
      using tenant = engine.instantiate(module);
      const pages = bytesOf(tenant).byteLength / WASM_PAGE;
      assert.equal(pages, i === 0 ? 0 : 2, `tenant ${i}`);
      assert.ok(bytesOf(tenant).every((b) => b === 0), `tenant ${i} sees zeros only`);
      if (i === 0) fn(tenant, "grow")(2);
      bytesOf(tenant).fill(0xcc);
      fn(tenant, "store")(WASM_PAGE + 3, 9);
    }
    const stats = engine.stats();
    assert.equal(stats.warmHits, 2);
    assert.equal(stats.recycleFallbacks, 0);
    // V8 hands out a memory of 0 pages at its reserved address (adopted then, kept in place);
    // JavaScriptCore at none (adopted once it grew).
    assert.equal(stats.hostMemoriesReadopted, lib.runtime === "bun" ? 1 : 0);
  });

  it("is a whole number of pages from 0 to moduleLimits.memoryPages", () => {
    for (const value of [-1, 1.5, 65537, Number.NaN, "8" as unknown as number]) {
      assert.throws(
        () => InstanceAllocationStrategy.pooling({ recycleGrownMemoryPages: value }),
        (error: unknown) =>
          error instanceof ArgumentError && error.message.includes(String(value)) &&
          error.message.includes("recycleGrownMemoryPages"),
        String(value),
      );
    }
    assert.throws(
      () =>
        InstanceAllocationStrategy.pooling({
          recycleGrownMemoryPages: 200,
          moduleLimits: { memoryPages: 160 },
        }),
      (error: unknown) =>
        error instanceof ArgumentError && /200 pages exceeds moduleLimits.memoryPages of 160/
          .test(error.message),
    );
    const settings = InstanceAllocationStrategy.pooling({ recycleGrownMemoryPages: 160 }).pooling;
    assert.equal(settings?.recycleGrownMemoryPages, 160);
    assert.equal(InstanceAllocationStrategy.pooling().pooling?.recycleGrownMemoryPages, 0);
  });
});
