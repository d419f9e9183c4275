// userfaultfd mode: paged images served on first touch, identical to segmented initialization,
// and engines that leave no thread or descriptor behind.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import {
  Config,
  Engine,
  Global,
  InstanceAllocationStrategy,
  Module,
  OutOfBoundsError,
  type PoolingOptions,
} from "../mod.ts";
import { prng } from "./fixtures/prng.ts";
import { sameBytes } from "./fixtures/same_bytes.ts";
import { buildModule, type DataSpec } from "./fixtures/wasm_builder.ts";

function pooled(options: PoolingOptions): Engine {
  return new Engine(
    new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling(options)),
  );
}

const limits = {
  moduleLimits: { memoryPages: 64, importedGlobals: 1 },
  instanceLimits: { count: 2, memoryReservationSize: 64 * 65536 },
};

/** Segments over `pages` pages: overlapping, spanning page edges, some all zeros. */
function randomSegments(seed: number, pages: number): DataSpec[] {
  const random = prng(seed);
  const segments: DataSpec[] = [];
  for (let i = 0; i < 40; i++) {
    const length = Math.floor(random() * 70000);
    const offset = Math.floor(random() * (pages * 65536 - length));
    const zeros = random() < 0.2;
    const data = new Uint8Array(length).map(() => (zeros ? 0 : Math.floor(random() * 256)));
    segments.push({ mode: "active", offset: { kind: "i32.const", value: offset }, data });
  }
  return segments;
}

function memoryOf(engine: Engine, bytes: Uint8Array): Uint8Array {
  const module = new Module(engine, bytes);
  using instance = engine.allocate(module);
  return new Uint8Array(instance.memories[0].buffer).slice();
}

/** Threads of this process named as the native handler names its thread. */
function handlerThreads(): number {
  let count = 0;
  for (const task of readdirSync("/proc/self/task")) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim() === "wasmpool-uffd") count++;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return count;
}

/** Descriptors of this process that are userfaultfds. */
function uffdDescriptors(): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === "anon_inode:[userfaultfd]") count++;
    } catch {
      // Closed between the listing and the read.
    }
  }
  return count;
}

describe("userfaultfd mode", () => {
  it("paged initialization is byte-identical to segmented, for seeded random images", () => {
    using paged = pooled({ ...limits, uffd: true });
    using segmented = pooled({ ...limits, uffd: false });
    for (const seed of [1, 2, 3, 4, 5]) {
      const pages = 4 + seed * 3;
      const bytes = buildModule({
        memories: [{ min: pages, max: null, shared: false }],
        data: randomSegments(seed, pages),
      });
      const expected = memoryOf(segmented, bytes);
      const actual = memoryOf(paged, bytes);
      assert.ok(sameBytes(actual, expected), `seed ${seed}: paged image differs`);
      assert.equal(actual.length, pages * 65536);
    }
  });

  it("fills only the pages that are touched, from the image or with zeros", () => {
    using engine = pooled({ ...limits, uffd: true });
    const image = new Uint8Array(20 * 65536).fill(0x5a);
    const module = new Module(
      engine,
      buildModule({
        memories: [{ min: 32, max: null, shared: false }],
        data: [{ mode: "active", offset: { kind: "i32.const", value: 65536 }, data: image }],
      }),
    );
    using instance = engine.allocate(module);
    const before = engine.stats();
    const memory = new Uint8Array(instance.memories[0].buffer);
    assert.equal(memory[65536 * 5 + 17], 0x5a); // a JS read of an image page
    memory[65536 * 25] = 7; // a JS write to a zero page
    assert.equal(memory[65536 * 25], 7);
    assert.equal(memory[3], 0);
    const after = engine.stats();
    assert.equal(after.uffdPagesCopied - before.uffdPagesCopied, 1);
    assert.equal(after.uffdPagesZeroed - before.uffdPagesZeroed, 2);
  });

  it("falls back to segmented initialization for offsets from imported globals", () => {
    using engine = pooled({ ...limits, uffd: true });
    const module = new Module(
      engine,
      buildModule({
        imports: [{
          module: "env",
          name: "base",
          desc: { kind: "global", type: { type: "i32", mutable: false } },
        }],
        memories: [{ min: 2, max: null, shared: false }],
        data: [{
          mode: "active",
          offset: { kind: "global.get", index: 0 },
          data: new TextEncoder().encode("segmented"),
        }],
      }),
    );
    using instance = engine.allocate(module, { env: { base: 70000 } });
    const text = new TextDecoder().decode(
      new Uint8Array(instance.memories[0].buffer, 70000, 9),
    );
    assert.equal(text, "segmented");
    assert.throws(
      () => engine.allocate(module, { env: { base: new Global({ type: "i32" }, 131070) } }),
      OutOfBoundsError,
    );
    assert.equal(engine.stats().liveInstances, 1);
  });

  it("grow makes pages readable and writable, and reuse gives them back as zeros", () => {
    using engine = pooled({ ...limits, uffd: true });
    const module = new Module(
      engine,
      buildModule({ memories: [{ min: 1, max: 8, shared: false }] }),
    );
    for (let round = 0; round < 3; round++) {
      using instance = engine.allocate(module);
      const memory = instance.memories[0];
      assert.equal(memory.pages, 1);
      memory.grow(3);
      const bytes = new Uint8Array(memory.buffer);
      assert.ok(bytes.every((b) => b === 0), `round ${round} sees a previous tenant's bytes`);
      bytes.fill(round + 1);
    }
  });

  it("closing 20 engines leaves no handler thread and no descriptor behind", () => {
    const before = { threads: handlerThreads(), fds: uffdDescriptors() };
    for (let i = 0; i < 20; i++) {
      const engine = pooled({ ...limits, uffd: true });
      const module = new Module(
        engine,
        buildModule({ memories: [{ min: 1, max: 1, shared: false }] }),
      );
      new Uint8Array(engine.allocate(module).memories[0].buffer)[0] = 1;
      engine.close();
    }
    assert.deepEqual({ threads: handlerThreads(), fds: uffdDescriptors() }, before);
  });

  it("each uffd engine runs one handler thread and holds one userfaultfd while it is open", () => {
    const before = { threads: handlerThreads(), fds: uffdDescriptors() };
    const engines = [0, 1, 2].map(() => pooled({ ...limits, uffd: true }));
    assert.deepEqual(
      { threads: handlerThreads(), fds: uffdDescriptors() },
      { threads: before.threads + 3, fds: before.fds + 3 },
    );
    for (const engine of engines) engine.close();
    assert.deepEqual({ threads: handlerThreads(), fds: uffdDescriptors() }, before);
  });

  it("two threads faulting on the same page at once, from native reads, both see the image", async () => {
    using engine = pooled({ ...limits, uffd: true });
    const text = new TextEncoder().encode("served once, seen twice");
    const module = new Module(
      engine,
      buildModule({
        memories: [{ min: 4, max: null, shared: false }],
        data: [{
          mode: "active",
          offset: { kind: "i32.const", value: 2 * 65536 + 40 },
          data: text,
        }],
      }),
    );
    for (let round = 0; round < 5; round++) {
      using instance = engine.allocate(module);
      const address = instance.memories[0].address + BigInt(2 * 65536 + 40);
      const start = new SharedArrayBuffer(8);
      const flag = new Int32Array(start);
      const url = new URL("./fixtures/touch_worker.ts", import.meta.url).href;
      const workers = [0, 1].map(() => new Worker(url, { type: "module" }));
      const results = workers.map((worker) =>
        new Promise<number[]>((resolve, reject) => {
          worker.onmessage = (event: MessageEvent<number[]>) => resolve(event.data);
          worker.onerror = (event: ErrorEvent) => reject(new Error(event.message));
        })
      );
      for (const worker of workers) worker.postMessage({ address, length: text.length, start });
      while (Atomics.load(flag, 1) < 2) await new Promise((resolve) => setTimeout(resolve, 1));
      Atomics.store(flag, 0, 1);
      const seen = await Promise.all(results);
      for (const worker of workers) worker.terminate();
      for (const bytes of seen) assert.deepEqual(bytes, [...text], `round ${round}`);
    }
  });
});
