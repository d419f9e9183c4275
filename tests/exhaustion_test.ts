// Exhaustion and system-call failures: each is a WasmpoolError naming the cause, and the pool
// stays consistent and usable afterwards. Failures are injected through the native test hook
// (zig/src/sys.zig), as vm.max_map_count or memory running out would cause them.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  Engine,
  InstanceAllocationStrategy,
  LimitError,
  Module,
  type PoolingOptions,
  ResourceError,
  UffdUnavailableError,
} from "../mod.ts";
import { native } from "../src/ffi/load.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

const MAP = 0;
const PROTECT = 1;
const DECOMMIT = 2;
const USERFAULTFD = 3;
const MAP_FIXED = 5;

function inject(operation: number, count: number): void {
  assert.equal(native().testInjectFailures(operation, count), 0);
}

function pooled(options: PoolingOptions): Engine {
  return new Engine(
    new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling(options)),
  );
}

const small = {
  moduleLimits: { memoryPages: 4 },
  instanceLimits: { count: 2, memoryReservationSize: 4 * 65536 },
};
const memoryModule = buildModule({
  memories: [{ min: 2, max: 4, shared: false }],
  data: [{ mode: "active", data: new Uint8Array([1, 2, 3]) }],
});

describe("system-call failures", () => {
  it("mprotect refused at instantiation: ResourceError with the errno, nothing left live", () => {
    using engine = pooled(small);
    const module = new Module(engine, memoryModule);
    inject(PROTECT, 1);
    assert.throws(() => engine.allocate(module), (error: unknown) => {
      assert.ok(error instanceof ResourceError);
      assert.match(error.message, /ENOMEM \(errno 12\)/);
      return true;
    });
    assert.equal(engine.stats().liveInstances, 0);
    using instance = engine.allocate(module);
    assert.deepEqual([...new Uint8Array(instance.memories[0].buffer, 0, 4)], [1, 2, 3, 0]);
  });

  it("mprotect refused at grow: ResourceError, the memory keeps its size and stays usable", () => {
    using engine = pooled(small);
    using instance = engine.allocate(new Module(engine, memoryModule));
    const memory = instance.memories[0];
    inject(PROTECT, 1);
    assert.throws(() => memory.grow(1), /memory grow by 1 pages failed: ENOMEM/);
    assert.equal(memory.pages, 2);
    assert.equal(memory.grow(1), 2);
    new Uint8Array(memory.buffer)[3 * 65536 - 1] = 1;
  });

  it("madvise refused at reset: the slot is restored to a fresh reservation, not dirty", () => {
    using engine = pooled({ ...small, memoryKeepResident: 0 });
    const module = new Module(engine, memoryModule);
    const first = engine.allocate(module);
    const address = first.memories[0].address;
    new Uint8Array(first.memories[0].buffer).fill(0xee);
    inject(DECOMMIT, 1);
    first.dispose();
    assert.equal(engine.stats().quarantinedSlots, 0);
    // The same slot comes back (module affinity), as the module initializes it.
    using second = engine.allocate(module);
    assert.equal(second.memories[0].address, address);
    const bytes = new Uint8Array(second.memories[0].buffer);
    assert.deepEqual([...bytes.subarray(0, 4)], [1, 2, 3, 0]);
    assert.ok(bytes.subarray(3).every((b) => b === 0));
  });

  it("madvise and the restoring mmap refused: quarantined, never handed out dirty", () => {
    using engine = pooled({ ...small, memoryKeepResident: 0 });
    const module = new Module(engine, memoryModule);
    const first = engine.allocate(module);
    const address = first.memories[0].address;
    new Uint8Array(first.memories[0].buffer).fill(0xee);
    inject(DECOMMIT, 1);
    inject(MAP_FIXED, 1);
    assert.throws(() => first.dispose(), (error: unknown) => {
      assert.ok(error instanceof ResourceError);
      assert.match(error.message, /madvise\(MADV_DONTNEED\) of its memory failed with ENOMEM/);
      assert.match(error.message, /quarantined/);
      return true;
    });
    assert.equal(first.disposed, true);
    const stats = engine.stats();
    assert.equal(stats.quarantinedSlots, 1);
    assert.equal(stats.quarantineOperation, "madvise");
    assert.equal(stats.quarantineErrno, 12);
    assert.equal(stats.liveInstances, 0);
    // The other slot still works, and the dirty one is not handed out.
    using second = engine.allocate(module);
    assert.notEqual(second.memories[0].address, address);
    assert.ok(new Uint8Array(second.memories[0].buffer).subarray(3).every((b) => b === 0));
    assert.throws(() => engine.allocate(module), /Limit of 2 concurrent instances/);
  });

  it("mmap refused on demand: ResourceError, and the next instantiation works", () => {
    using engine = new Engine();
    const module = new Module(engine, memoryModule);
    inject(MAP, 1);
    assert.throws(() => engine.allocate(module), ResourceError);
    assert.equal(engine.stats().liveInstances, 0);
    using instance = engine.allocate(module);
    assert.equal(instance.memories[0].pages, 2);
  });

  it("userfaultfd refused: UffdUnavailableError naming the cause and the remedy", () => {
    inject(USERFAULTFD, 1);
    assert.throws(() => pooled({ ...small, uffd: true }), (error: unknown) => {
      assert.ok(error instanceof UffdUnavailableError);
      assert.ok(error instanceof ResourceError);
      assert.match(error.message, /the userfaultfd system call failed with EPERM \(errno 1\)/);
      assert.match(error.message, /vm\.unprivileged_userfaultfd=1/);
      return true;
    });
    // No silent fallback, and nothing left behind: the next engine gets userfaultfd.
    pooled({ ...small, uffd: true }).close();
  });

  it("mmap refused at engine creation names the pool", () => {
    inject(MAP, 1);
    assert.throws(
      () => pooled(small),
      /failed to reserve \d+ bytes of address space for the instance pool: ENOMEM/,
    );
    pooled(small).close();
  });
});

describe("address space", () => {
  it("a pool larger than the address space is a LimitError, not a crash", () => {
    assert.throws(
      () =>
        pooled({
          instanceLimits: { count: 100_000 }, // 100,000 × 6 GiB
        }),
      (error: unknown) =>
        error instanceof LimitError && /overflows the address space/.test(error.message),
    );
  });

  it("pools that no longer fit the remaining address space: ResourceError, then usable again", () => {
    // 1,000 × 6 GiB ≈ 5.9 TiB each: a few dozen fit a 47-bit address space, then one does not.
    const options = { instanceLimits: { count: 1_000 } };
    const engines: Engine[] = [];
    let refused: unknown = null;
    try {
      for (let i = 0; i < 4096 && refused === null; i++) {
        try {
          engines.push(pooled(options));
        } catch (error) {
          refused = error;
        }
      }
      assert.ok(refused instanceof ResourceError, `no refusal after ${engines.length} pools`);
      assert.match(refused.message, /failed to reserve \d+ bytes .* ENOMEM/);
    } finally {
      for (const engine of engines) engine.close();
    }
    // Everything was given back: a pool of the same size fits again.
    pooled(options).close();
  });
});
