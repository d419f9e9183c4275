// Memory images: each tenant of a slot sees exactly its module's initial memory, as the
// runtime's own `new WebAssembly.Instance` of the same bytes has it, whatever the previous
// tenant wrote or which module it was; copy-on-write holds between live instances; grow,
// shrink and keep-resident around the image's end; nothing leaks; failures of memfd_create,
// of the mmap over a slot and of madvise leave no dirty slot. Module affinity and its stats.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import {
  Config,
  Engine,
  type Imports,
  InstanceAllocationStrategy,
  type InstanceHandle,
  LimitError,
  Module,
  PoolExhaustedError,
  type PoolingOptions,
  ResourceError,
} from "../mod.ts";
import { native } from "../src/ffi/load.ts";
import { nativeMemset } from "./fixtures/native_write.ts";
import { prng } from "./fixtures/prng.ts";
import { allZero, sameBytes } from "./fixtures/same_bytes.ts";
import { buildModule, type DataSpec } from "./fixtures/wasm_builder.ts";

const PAGE = 65536;
const CYCLES = 10_000;
const MEMORY_PAGES = 6;
const DECOMMIT = 2;
const MEMFD_CREATE = 4;
const MAP_FIXED = 5;

/** A module and what the runtime's own instance of it starts with. */
interface Case {
  readonly name: string;
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** The initial memory of `new WebAssembly.Instance(bytes)`. */
  readonly reference: Uint8Array;
  readonly imports: Imports;
}

function active(offset: number, data: Uint8Array): DataSpec {
  return { mode: "active", offset: { kind: "i32.const", value: offset }, data };
}

function randomBytes(random: () => number, length: number, zeros = false): Uint8Array {
  return new Uint8Array(length).map(() => (zeros ? 0 : 1 + Math.floor(random() * 255)));
}

/** Builds `spec`'s module, exporting its memory, and instantiates it with the runtime. */
function makeCase(
  name: string,
  min: number,
  data: DataSpec[],
  importBase: number | null = null,
): Case {
  const bytes = buildModule({
    imports: importBase === null ? [] : [{
      module: "env",
      name: "base",
      desc: { kind: "global", type: { type: "i32", mutable: false } },
    }],
    memories: [{ min, max: min + 2, shared: false }],
    exports: [{ name: "memory", kind: "memory", index: 0 }],
    data,
  });
  const wasmImports: WebAssembly.Imports = importBase === null ? {} : {
    env: { base: new WebAssembly.Global({ value: "i32", mutable: false }, importBase) },
  };
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), wasmImports);
  const memory = instance.exports.memory as WebAssembly.Memory;
  const reference = new Uint8Array(memory.buffer).slice();
  const imports: Imports = importBase === null ? {} : { env: { base: importBase } };
  return { name, bytes, reference, imports };
}

/** Modules with images of every shape, and one initialized segment by segment. */
function cases(): Case[] {
  const random = prng(4242);
  const spread: DataSpec[] = [];
  for (let i = 0; i < 12; i++) {
    const length = 1 + Math.floor(random() * 30000);
    const offset = Math.floor(random() * (3 * PAGE - length));
    spread.push(active(offset, randomBytes(random, length, random() < 0.2)));
  }
  return [
    makeCase("1 KiB at 0, one page", 1, [active(0, randomBytes(random, 1024))]),
    makeCase("segments over 3 pages, overlapping, some zeros", 3, spread),
    makeCase("an image up to the last byte of 2 pages", 2, [
      active(2 * PAGE - 5000, randomBytes(random, 5000)),
    ]),
    makeCase("a small image in a 4-page memory", 4, [active(70, randomBytes(random, 300))]),
    makeCase("no data", 2, []),
    makeCase("only zero bytes", 1, [active(10, new Uint8Array(100))]),
    makeCase("offset from an imported global: segmented", 2, [{
      mode: "active",
      offset: { kind: "global.get", index: 0 },
      data: randomBytes(random, 2000),
    }, active(5, randomBytes(random, 40))], 70000),
  ];
}

function pooled(options: PoolingOptions): Engine {
  return new Engine(
    new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling(options)),
  );
}

const limits = {
  moduleLimits: { memoryPages: MEMORY_PAGES, importedGlobals: 1 },
  instanceLimits: { count: 4, memoryReservationSize: MEMORY_PAGES * PAGE },
} as const;

/** Open descriptors of this process that are module images (memfds). */
function imageDescriptors(): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith("/memfd:wasmpool-image")) count++;
    } catch {
      // Closed between the listing and the read.
    }
  }
  return count;
}

/** Mappings of this process of a module image's memfd (slots and views). */
function imageMappings(): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n")
    .filter((line) => line.includes("memfd:wasmpool-image")).length;
}

const modes: { name: string; options: PoolingOptions }[] = [
  { name: "mprotect, next-available, keep-resident 64 KiB", options: {} },
  {
    name: "mprotect, random, keep-resident 0",
    options: { strategy: "random", seed: 7, memoryKeepResident: 0 },
  },
  {
    name: "mprotect, no warm slots kept (every module change remaps), keep-resident 128 KiB",
    options: { maxUnusedWarmSlots: 0, memoryKeepResident: 2 * PAGE },
  },
  { name: "uffd, next-available", options: { uffd: true } },
];

describe(`every tenant sees its module's initial memory, ${CYCLES} seeded cycles`, () => {
  for (const { name, options } of modes) {
    // A safety net against a hang, not a timing assertion: bun's default is 5 s.
    it(name, { timeout: 120_000 }, () => {
      using engine = pooled({ ...limits, ...options });
      const all = cases();
      const modules = all.map((c) => new Module(engine, c.bytes));
      const random = prng(99 + name.length);
      const live: InstanceHandle[] = [];
      let checked = 0;
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        if (live.length === 4 || (live.length > 0 && random() < 0.45)) {
          live.splice(Math.floor(random() * live.length), 1)[0].dispose();
          continue;
        }
        const which = Math.floor(random() * all.length);
        const c = all[which];
        const instance = engine.allocate(modules[which], c.imports);
        const memory = instance.memories[0];
        assert.ok(
          sameBytes(memory.buffer, c.reference),
          `cycle ${cycle}: ${c.name} does not start as WebAssembly.Instance does`,
        );
        checked++;
        // Leave something behind for the next tenant to (not) see.
        const roll = random();
        if (roll < 0.3) {
          const old = memory.grow(1 + Math.floor(random() * 2));
          assert.ok(allZero(memory.buffer, old * PAGE), `cycle ${cycle}: grown pages not zero`);
        }
        const bytes = new Uint8Array(memory.buffer);
        for (let w = 0; w < 32; w++) bytes[Math.floor(random() * bytes.length)] = 0xa5;
        bytes[bytes.length - 1] = 0x5a;
        if (roll > 0.9) {
          const at = Math.floor(random() * (bytes.length - 5000));
          nativeMemset(memory.address + BigInt(at), 0x3c, 5000);
          assert.equal(bytes[at + 4999], 0x3c);
        }
        live.push(instance);
      }
      for (const instance of live) instance.dispose();
      const stats = engine.stats();
      assert.equal(stats.liveInstances, 0);
      assert.equal(stats.quarantinedSlots, 0);
      assert.ok(checked > CYCLES / 3);
      if (options.uffd) assert.ok(stats.uffdPrefetchedBytes > 0, "nothing was prefetched");
      else assert.ok(stats.imageRemaps > 0 && stats.affineHits > 0);
    });
  }
});

describe("copy-on-write between live instances of one module", () => {
  const strategies: [string, () => Engine][] = [
    ["pooling (mprotect)", () => pooled(limits)],
    ["pooling (uffd)", () => pooled({ ...limits, uffd: true })],
    ["on-demand", () => new Engine()],
  ];
  for (const [name, make] of strategies) {
    it(`${name}: a write through one instance is not seen by another`, () => {
      using engine = make();
      const c = cases()[1];
      const module = new Module(engine, c.bytes);
      using a = engine.allocate(module);
      using b = engine.allocate(module);
      const bufferA = new Uint8Array(a.memories[0].buffer);
      bufferA.fill(0x11, 0, PAGE);
      nativeMemset(a.memories[0].address + BigInt(PAGE), 0x22, 2 * PAGE);
      assert.equal(bufferA[PAGE + 7], 0x22);
      assert.ok(sameBytes(b.memories[0].buffer, c.reference), "b sees a's writes");
      using c2 = engine.allocate(module);
      assert.ok(sameBytes(c2.memories[0].buffer, c.reference), "a new instance sees a's writes");
      nativeMemset(b.memories[0].address, 0x33, 3 * PAGE);
      assert.equal(bufferA[PAGE + 7], 0x22);
      assert.equal(bufferA[5], 0x11);
    });
  }
});

describe("grow past the image, shrink back on reuse, keep-resident around the image's end", () => {
  // The image covers exactly 2 pages (its last byte is data); the memory may grow to 4.
  for (const keep of [0, PAGE, 2 * PAGE, 3 * PAGE + 4096]) {
    it(`memoryKeepResident ${keep} (image end ${2 * PAGE})`, () => {
      using engine = pooled({
        ...limits,
        instanceLimits: { ...limits.instanceLimits, count: 1 },
        memoryKeepResident: keep,
      });
      const all = cases();
      const main = all[2];
      const other = all[3];
      const mainModule = new Module(engine, main.bytes);
      const otherModule = new Module(engine, other.bytes);
      for (let round = 0; round < 3; round++) {
        const instance = engine.allocate(mainModule);
        const memory = instance.memories[0];
        assert.equal(memory.pages, 2, `round ${round}: not shrunk back to the initial size`);
        assert.ok(sameBytes(memory.buffer, main.reference), `round ${round}: not the image`);
        assert.equal(memory.grow(2), 2);
        assert.ok(allZero(memory.buffer, 2 * PAGE), `round ${round}: grown pages not zero`);
        new Uint8Array(memory.buffer).fill(0xee);
        instance.dispose();
      }
      // Another module on the same slot: its own image, nothing of the first module.
      const instance = engine.allocate(otherModule);
      assert.equal(instance.memories[0].pages, 4);
      assert.ok(sameBytes(instance.memories[0].buffer, other.reference), "other module's image");
      new Uint8Array(instance.memories[0].buffer).fill(0x77);
      instance.dispose();
      using again = engine.allocate(mainModule);
      assert.ok(sameBytes(again.memories[0].buffer, main.reference), "back to the first image");
      const stats = engine.stats();
      assert.equal(stats.affineHits, 2);
      assert.equal(stats.imageRemaps, 3);
    });
  }
});

describe("module affinity", () => {
  it("a steady stream of one module maps its image once", () => {
    using engine = pooled(limits);
    const c = cases()[1];
    const module = new Module(engine, c.bytes);
    const first = engine.allocate(module);
    const address = first.memories[0].address;
    first.dispose();
    for (let i = 0; i < 50; i++) {
      using instance = engine.allocate(module);
      assert.equal(instance.memories[0].address, address);
      new Uint8Array(instance.memories[0].buffer)[i] = 1;
    }
    const stats = engine.stats();
    assert.equal(stats.imageRemaps, 1);
    assert.equal(stats.affineHits, 50);
  });

  it("two modules alternating keep a slot each; with no warm slots kept they take turns", () => {
    const run = (maxUnusedWarmSlots: number): { remaps: number; hits: number } => {
      using engine = pooled({ ...limits, maxUnusedWarmSlots });
      const all = cases();
      const a = new Module(engine, all[1].bytes);
      const b = new Module(engine, all[3].bytes);
      for (let i = 0; i < 20; i++) {
        engine.allocate(i % 2 === 0 ? a : b).dispose();
      }
      const stats = engine.stats();
      return { remaps: stats.imageRemaps, hits: stats.affineHits };
    };
    assert.deepEqual(run(4), { remaps: 2, hits: 18 });
    assert.deepEqual(run(0), { remaps: 20, hits: 0 });
  });

  it("imageBytesShared and imageBytes", () => {
    using engine = pooled(limits);
    const module = new Module(engine, cases()[0].bytes);
    assert.equal(engine.stats().imageBytes, 4096);
    const instances = [engine.allocate(module), engine.allocate(module)];
    assert.equal(engine.stats().imageBytesShared, 2 * PAGE);
    for (const instance of instances) instance.dispose();
    assert.equal(engine.stats().imageBytesShared, 0);
  });

  it("maxUnusedWarmSlots defaults to Wasmtime's 100 (or the pool size) and is validated", () => {
    const settings = (options: PoolingOptions) =>
      InstanceAllocationStrategy.pooling(options).pooling!.maxUnusedWarmSlots;
    assert.equal(settings({}), 100);
    assert.equal(settings({ instanceLimits: { count: 4 } }), 4);
    assert.equal(settings({ maxUnusedWarmSlots: 0 }), 0);
    assert.throws(
      () => settings({ instanceLimits: { count: 4 }, maxUnusedWarmSlots: 5 }),
      (error: unknown) => {
        assert.ok(error instanceof LimitError);
        assert.equal(
          error.message,
          "maxUnusedWarmSlots of 5 exceeds the instance count limit of 4",
        );
        assert.deepEqual(error.details, { limit: "maxUnusedWarmSlots", value: 5, maximum: 4 });
        return true;
      },
    );
    assert.throws(() => settings({ maxUnusedWarmSlots: -1 }), LimitError);
    assert.throws(() => settings({ maxUnusedWarmSlots: 1.5 }), LimitError);
  });
});

describe("no leak: descriptors and mappings of images come back to their count", () => {
  const eight = { ...limits, instanceLimits: { ...limits.instanceLimits, count: 8 } };
  const strategies: [string, () => Engine][] = [
    ["pooling (mprotect)", () => pooled(eight)],
    ["pooling (uffd)", () => pooled({ ...eight, uffd: true })],
    ["on-demand", () => new Engine()],
  ];
  for (const [name, make] of strategies) {
    it(name, () => {
      const before = { fds: imageDescriptors(), maps: imageMappings() };
      const engine = make();
      const modules = cases().map((c) => ({ c, module: new Module(engine, c.bytes) }));
      // Five images: "no data", "only zero bytes" and the segmented module have none.
      assert.equal(imageDescriptors(), before.fds + 4);
      const live = modules.map(({ c, module }) => engine.allocate(module, c.imports));
      // The four views, and in mprotect and on-demand mode one mapping per imaged memory (the
      // uffd handler copies from the views instead).
      const mapped = engine.config.allocationStrategy.pooling?.uffd ? 0 : 4;
      assert.equal(imageMappings(), before.maps + 4 + mapped);
      for (const instance of live) instance.dispose();
      engine.close();
      assert.deepEqual({ fds: imageDescriptors(), maps: imageMappings() }, before);
    });
  }
});

describe("injected failures: a WasmpoolError naming the cause, no dirty slot", () => {
  const inject = (operation: number, count: number): void =>
    assert.equal(native().testInjectFailures(operation, count), 0);

  it("memfd_create refused: the module is refused, nothing leaks, the next one works", () => {
    using engine = pooled(limits);
    const fds = imageDescriptors();
    inject(MEMFD_CREATE, 1);
    assert.throws(() => new Module(engine, cases()[1].bytes), (error: unknown) => {
      assert.ok(error instanceof ResourceError);
      assert.match(error.message, /memfd_create failed with ENOMEM \(errno 12\)/);
      return true;
    });
    assert.equal(engine.stats().modules, 0);
    assert.equal(imageDescriptors(), fds);
    const c = cases()[1];
    using instance = engine.allocate(new Module(engine, c.bytes));
    assert.ok(sameBytes(instance.memories[0].buffer, c.reference));
  });

  it("mmap over the slot refused: restored once, quarantined when the restore fails too", () => {
    using engine = pooled({
      ...limits,
      instanceLimits: { ...limits.instanceLimits, count: 1 },
      maxUnusedWarmSlots: 0,
    });
    const all = cases();
    const [a, b] = [all[1], all[3]];
    const moduleA = new Module(engine, a.bytes);
    const moduleB = new Module(engine, b.bytes);
    const first = engine.allocate(moduleA);
    new Uint8Array(first.memories[0].buffer).fill(0xee);
    first.dispose();
    inject(MAP_FIXED, 1);
    assert.throws(() => engine.allocate(moduleB), (error: unknown) => {
      assert.ok(error instanceof ResourceError);
      assert.match(error.message, /mmap of .* over .*slot failed with ENOMEM/);
      assert.match(error.message, /restored and is reusable/);
      return true;
    });
    assert.equal(engine.stats().quarantinedSlots, 0);
    const second = engine.allocate(moduleB);
    assert.ok(sameBytes(second.memories[0].buffer, b.reference), "restored slot is dirty");
    new Uint8Array(second.memories[0].buffer).fill(0xee);
    second.dispose();
    inject(MAP_FIXED, 2);
    assert.throws(() => engine.allocate(moduleA), /quarantined/);
    const stats = engine.stats();
    assert.equal(stats.quarantinedSlots, 1);
    assert.equal(stats.quarantineOperation, "mmap");
    assert.equal(stats.liveInstances, 0);
    // The only slot is out of service: never handed out again.
    assert.throws(() => engine.allocate(moduleA), PoolExhaustedError);
  });

  it("madvise refused at reset: the slot is restored to its image by a fresh mapping", () => {
    using engine = pooled({ ...limits, instanceLimits: { ...limits.instanceLimits, count: 1 } });
    const c = cases()[1];
    const module = new Module(engine, c.bytes);
    const first = engine.allocate(module);
    first.memories[0].grow(2);
    new Uint8Array(first.memories[0].buffer).fill(0xee);
    inject(DECOMMIT, 1);
    first.dispose();
    assert.equal(engine.stats().quarantinedSlots, 0);
    using second = engine.allocate(module);
    assert.ok(sameBytes(second.memories[0].buffer, c.reference));
    second.memories[0].grow(2);
    assert.ok(allZero(second.memories[0].buffer, 3 * PAGE));
  });
});

describe("uffd working-set prefetch", () => {
  // keep-resident 0: all three pages are prefetched; 64 KiB: the first stays resident.
  for (const [keep, prefetchedPages] of [[0, 3], [PAGE, 2]]) {
    it(`memoryKeepResident ${keep}: the pages the first instance faulted are filled at the next instantiations`, () => {
      using engine = pooled({ ...limits, uffd: true, memoryKeepResident: keep });
      const c = cases()[1];
      const module = new Module(engine, c.bytes);
      const sampled = (bytes: Uint8Array): number => {
        let sum = 0;
        for (let at = 0; at < bytes.length; at += 4096) sum += bytes[at];
        return sum;
      };
      // Reads the first byte of every host page (each read may fault), then writes one.
      const touch = (instance: InstanceHandle): void => {
        const bytes = new Uint8Array(instance.memories[0].buffer);
        assert.equal(sampled(bytes), sampled(c.reference), "every tenant starts at the image");
        bytes[PAGE + 8] = 1;
      };
      // The first tenant records the host page it first touched in each wasm page (and the
      // pages it wrote); the second, finding each wasm page partly there, teaches the rest.
      for (let i = 0; i < 2; i++) {
        const learning = engine.allocate(module);
        touch(learning);
        learning.dispose();
      }
      const learned = engine.stats();
      assert.ok(learned.uffdPagesCopied + learned.uffdPagesZeroed >= 3);
      for (let i = 0; i < 5; i++) {
        using instance = engine.allocate(module);
        assert.ok(sameBytes(instance.memories[0].buffer, c.reference));
        touch(instance);
      }
      const after = engine.stats();
      assert.equal(
        after.uffdPagesCopied + after.uffdPagesZeroed,
        learned.uffdPagesCopied + learned.uffdPagesZeroed,
        "the handler was reached again",
      );
      assert.equal(
        after.uffdPrefetchedBytes - learned.uffdPrefetchedBytes,
        5 * prefetchedPages * PAGE,
      );
    });
  }
});
