// Translation choices a user can observe: what is refused, and when uffd mode pages an image.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  Engine,
  InstanceAllocationStrategy,
  Module,
  UnsupportedFeatureError,
} from "../mod.ts";
import { buildModule, type DataSpec } from "./fixtures/wasm_builder.ts";

const PAGE = 65536;

function uffdEngine(): Engine {
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    uffd: true,
    moduleLimits: { memoryPages: 64 },
    instanceLimits: { count: 2, memoryReservationSize: 64 * PAGE },
  })));
}

function segments(count: number, stride: number, length: number): DataSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    mode: "active" as const,
    offset: { kind: "i32.const" as const, value: i * stride },
    data: new Uint8Array(length).fill(i + 1),
  }));
}

describe("translation", () => {
  it("refuses shared memories, defined or imported", () => {
    using engine = new Engine();
    const shared = { min: 1, max: 1, shared: true };
    assert.throws(
      () => new Module(engine, buildModule({ memories: [shared] })),
      UnsupportedFeatureError,
    );
    assert.throws(
      () =>
        new Module(
          engine,
          buildModule({
            imports: [{ module: "env", name: "m", desc: { kind: "memory", type: shared } }],
          }),
        ),
      UnsupportedFeatureError,
    );
  });

  it("uffd mode pages a dense image: pages are copied in on first touch", () => {
    using engine = uffdEngine();
    const module = new Module(
      engine,
      buildModule({
        memories: [{ min: 64, max: null, shared: false }],
        data: segments(8, PAGE, PAGE),
      }),
    );
    using instance = engine.allocate(module);
    const bytes = new Uint8Array(instance.memories[0].buffer);
    for (let page = 0; page < 8; page++) assert.equal(bytes[page * PAGE + 5], page + 1);
    assert.equal(engine.stats().uffdPagesCopied, 8);
  });

  it("uffd mode does not page a sparse image (a byte in each of many pages): segments instead", () => {
    using engine = uffdEngine();
    // 64 one-byte segments, each in its own page: 4 MiB of pages for 64 bytes of data.
    const module = new Module(
      engine,
      buildModule({
        memories: [{ min: 64, max: null, shared: false }],
        data: segments(64, PAGE, 1),
      }),
    );
    using instance = engine.allocate(module);
    const bytes = new Uint8Array(instance.memories[0].buffer);
    for (let page = 0; page < 64; page++) assert.equal(bytes[page * PAGE], page + 1);
    const stats = engine.stats();
    assert.equal(stats.uffdPagesCopied, 0, "a sparse image was paged");
    assert.ok(stats.uffdPagesZeroed >= 64);
  });
});
