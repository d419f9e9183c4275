// Tenant isolation: 10,000 instantiate/dispose cycles over random slots with random writes.
// Every new instance sees exactly its module's image and zeros elsewhere, never a byte of a
// previous tenant; every buffer handed out is detached at dispose; stale objects throw.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  InstanceAllocationStrategy,
  type InstanceHandle,
  Module,
} from "../mod.ts";
import { prng } from "./fixtures/prng.ts";
import { allZero, sameBytes } from "./fixtures/same_bytes.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

const CYCLES = 10_000;
const PAGE = 65536;

interface Tenant {
  readonly module: Module;
  /** The first page as the module initializes it. */
  readonly image: Uint8Array;
  /** The table as the module initializes it. */
  readonly table: readonly (number | null)[];
}

function tenants(engine: Engine): Tenant[] {
  return [1, 2, 3].map((seed) => {
    const random = prng(seed * 7919);
    const offset = Math.floor(random() * 60000);
    const data = new Uint8Array(1 + Math.floor(random() * 4000)).map(() =>
      1 + (random() * 255 | 0)
    );
    const image = new Uint8Array(PAGE);
    image.set(data, offset);
    const elements = [seed, seed + 1, seed + 2];
    const table: (number | null)[] = new Array(8).fill(null);
    table.splice(seed, 3, ...elements);
    const module = new Module(
      engine,
      buildModule({
        types: [{ params: [], results: [] }],
        functions: [0, 0, 0, 0, 0, 0],
        memories: [{ min: 1, max: 3, shared: false }],
        tables: [{ element: "funcref", min: 8, max: 8 }],
        data: [{ mode: "active", offset: { kind: "i32.const", value: offset }, data }],
        elements: [{ mode: "active", offset: { kind: "i32.const", value: seed }, elements }],
      }),
    );
    return { module, image, table };
  });
}

const modes = [
  { name: "pooling (mprotect, keep-resident)", options: {} },
  { name: "pooling (mprotect, keep-resident 0)", options: { memoryKeepResident: 0 } },
  { name: "pooling (uffd)", options: { uffd: true } },
  { name: "on-demand", options: null },
] as const;

describe(`tenant isolation over ${CYCLES} cycles`, () => {
  for (const { name, options } of modes) {
    // A safety net against a hang, not a timing assertion: bun's default of 5 s is too short
    // on a loaded machine.
    it(name, { timeout: 120_000 }, () => {
      const strategy = options === null
        ? InstanceAllocationStrategy.onDemand()
        : InstanceAllocationStrategy.pooling({
          ...options,
          strategy: "random",
          seed: 99,
          moduleLimits: { memoryPages: 3, tableElements: 8, functions: 6 },
          instanceLimits: { count: 4, memoryReservationSize: 4 * PAGE },
        });
      using engine = new Engine(new Config().withAllocationStrategy(strategy));
      const all = tenants(engine);
      const random = prng(12345);
      const live: { instance: InstanceHandle; buffers: ArrayBuffer[] }[] = [];
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        if (live.length === 4 || (live.length > 0 && random() < 0.5)) {
          const [victim] = live.splice(Math.floor(random() * live.length), 1);
          const memory = victim.instance.memories[0];
          const table = victim.instance.tables[0];
          victim.instance.dispose();
          for (const buffer of victim.buffers) assert.equal(buffer.byteLength, 0, "not detached");
          assert.throws(() => victim.instance.memories, DisposedError);
          assert.throws(() => memory.buffer, DisposedError);
          assert.throws(() => table.get(0), DisposedError);
          continue;
        }
        const tenant = all[Math.floor(random() * all.length)];
        const instance = engine.allocate(tenant.module);
        const memory = instance.memories[0];
        const first = memory.buffer;
        assert.ok(
          sameBytes(new Uint8Array(first, 0, tenant.image.length), tenant.image),
          `cycle ${cycle}: not the module's image`,
        );
        const table = instance.tables[0];
        for (let i = 0; i < 8; i++) {
          assert.equal(table.get(i), tenant.table[i], `cycle ${cycle}: table entry ${i}`);
        }
        const buffers = [first];
        const grown = Math.floor(random() * 3);
        if (grown > 0) {
          memory.grow(grown);
          const bigger = memory.buffer;
          assert.ok(allZero(bigger, PAGE), `cycle ${cycle}: grown pages not zero`);
          buffers.push(bigger);
        }
        // Scribble over the memory and the table for the next tenant to (not) see.
        const bytes = new Uint8Array(memory.buffer);
        for (let w = 0; w < 64; w++) bytes[Math.floor(random() * bytes.length)] = 0xa5;
        bytes[bytes.length - 1] = 0x5a;
        for (let i = 0; i < 8; i++) table.set(i, 1000 + i);
        live.push({ instance, buffers });
      }
      for (const { instance } of live) instance.dispose();
      const stats = engine.stats();
      assert.equal(stats.liveInstances, 0);
      assert.equal(stats.instantiations, stats.deallocations);
    });
  }
});
