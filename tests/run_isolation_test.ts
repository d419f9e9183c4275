// Tenant isolation of running instances: 10,000 seeded cycles per strategy of tenants that write
// random bytes (through their code and through the buffer), globals and table entries, and
// sometimes grow their memory, with several instances alive at once. Every new tenant sees
// exactly the state a fresh `new WebAssembly.Instance` of its module has; everything a
// disposed tenant handed out throws or is detached. With interruption on, some tenants also run
// away writing their memory until their deadline stops them: poisoned, then disposed, and
// nothing of what they wrote reaches the next tenant.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DeadlineExceededError,
  DisposedError,
  Engine,
  type GuardedGlobal,
  type GuardedMemory,
  type GuardedTable,
  type Instance,
  InstanceAllocationStrategy,
  Module,
} from "../mod.ts";
import { prng } from "./fixtures/prng.ts";
import { START_MARK, tenantModule } from "./fixtures/run_modules.ts";

const CYCLES = 10_000;
// On demand every instance gets a new memory from the runtime: JavaScriptCore takes 0.3-4 ms
// to make one (V8: 10 µs), so Bun runs fewer cycles there. The pooled strategies, whose
// memories pass from tenant to tenant, run them all.
const ON_DEMAND_CYCLES = typeof (globalThis as { Bun?: unknown }).Bun === "undefined"
  ? CYCLES
  : 2_000;
const LIVE_AT_ONCE = 4;

type Fn = (...args: number[]) => number;

interface Tenant {
  readonly module: Module;
  /** Memory, counter and table as a fresh runtime instance of the same bytes has them. */
  readonly memory: Uint8Array;
  readonly counter: number;
  readonly tableLength: number;
}

function tenants(engine: Engine, spin: boolean): Tenant[] {
  return [1, 2, 3].map((seed) => {
    const random = prng(seed * 7919);
    const data = new Uint8Array(1 + Math.floor(random() * 3000)).map(() =>
      1 + (random() * 255 | 0)
    );
    const bytes = tenantModule({ data, dataOffset: 200 + Math.floor(random() * 60000), spin });
    const plain = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
    return {
      module: new Module(engine, bytes),
      memory: new Uint8Array((plain.memory as WebAssembly.Memory).buffer).slice(),
      counter: (plain.counter as WebAssembly.Global).value as number,
      tableLength: (plain.table as WebAssembly.Table).length,
    };
  });
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const x = new BigUint64Array(a.buffer, a.byteOffset, a.length / 8);
  const y = new BigUint64Array(b.buffer, b.byteOffset, b.length / 8);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

interface Live {
  readonly instance: Instance;
  readonly held: { buffer: ArrayBuffer; store: Fn; memory: GuardedMemory };
}

function checkFresh(instance: Instance, tenant: Tenant, cycle: number): void {
  const e = instance.exports;
  const memory = e.memory as GuardedMemory;
  const bytes = new Uint8Array(memory.buffer);
  assert.ok(same(bytes, tenant.memory), `cycle ${cycle}: the memory is not the module's own`);
  assert.equal(bytes[START_MARK.offset], START_MARK.value);
  assert.equal((e.counter as GuardedGlobal).value, tenant.counter, `cycle ${cycle}: counter`);
  const table = e.table as GuardedTable;
  assert.equal(table.length, tenant.tableLength, `cycle ${cycle}: table length`);
  assert.equal((e.callAt as Fn)(0, 20, 22), 42);
  for (let i = 1; i < table.length; i++) {
    assert.equal(table.get(i), null, `cycle ${cycle}: table entry ${i}`);
  }
}

/** Lets the tenant run away from a random address until a deadline of 2 ms stops it. */
function runAway(instance: Instance, random: () => number): void {
  instance.setDeadline(2);
  const spin = instance.exports.spin as Fn;
  assert.throws(() => spin(Math.floor(random() * 65536)), DeadlineExceededError);
  assert.throws(() => (instance.exports.bump as Fn)(), DeadlineExceededError, "poisoned");
}

function scribble(instance: Instance, random: () => number): Live["held"] {
  const e = instance.exports;
  const memory = e.memory as GuardedMemory;
  const store = e.store as Fn;
  const view = new Uint8Array(memory.buffer);
  for (let i = 0; i < 8; i++) store(Math.floor(random() * view.length), 1 + (random() * 255 | 0));
  for (let i = 0; i < 8; i++) view[Math.floor(random() * view.length)] = 1 + (random() * 255 | 0);
  const bumps = random() * 4 | 0;
  for (let i = 0; i < bumps; i++) (e.bump as Fn)();
  const table = e.table as GuardedTable;
  table.set(1 + Math.floor(random() * (table.length - 1)), table.get(0));
  if (random() < 0.05) (e.grow as Fn)(1);
  return { buffer: memory.buffer, store, memory };
}

function checkStale(held: Live["held"]): void {
  assert.equal(held.buffer.byteLength, 0, "a disposed tenant's buffer is detached");
  assert.throws(() => held.store(0, 1), DisposedError);
  assert.throws(() => held.memory.buffer, DisposedError);
}

const strategies: [string, () => InstanceAllocationStrategy, number, boolean][] = [
  [
    "pooling",
    () => InstanceAllocationStrategy.pooling({ instanceLimits: { count: LIVE_AT_ONCE } }),
    CYCLES,
    false,
  ],
  [
    "pooling, random slots",
    () =>
      InstanceAllocationStrategy.pooling({
        strategy: "random",
        instanceLimits: { count: LIVE_AT_ONCE },
      }),
    CYCLES,
    false,
  ],
  ["on-demand", () => InstanceAllocationStrategy.onDemand(), ON_DEMAND_CYCLES, false],
  [
    "pooling, interruptions mixed in",
    () => InstanceAllocationStrategy.pooling({ instanceLimits: { count: LIVE_AT_ONCE } }),
    CYCLES,
    true,
  ],
  [
    "on-demand, interruptions mixed in",
    () => InstanceAllocationStrategy.onDemand(),
    ON_DEMAND_CYCLES / 2,
    true,
  ],
];

/** Of the cycles with interruption on, the share whose tenant runs away. */
const RUN_AWAY_SHARE = 0.02;

describe("running instances: tenant isolation", () => {
  for (const [name, strategy, cycles, interruptions] of strategies) {
    it(`${cycles} seeded cycles, ${name}`, { timeout: 120_000 }, () => {
      const config = new Config().withAllocationStrategy(strategy());
      if (interruptions) config.withInterruption();
      using engine = new Engine(config);
      const all = tenants(engine, interruptions);
      let ranAway = 0;
      const random = prng(42);
      const live: Live[] = [];
      for (let cycle = 0; cycle < cycles; cycle++) {
        if (live.length === LIVE_AT_ONCE || (live.length > 0 && random() < 0.5)) {
          const [gone] = live.splice(Math.floor(random() * live.length), 1);
          gone.instance.dispose();
          checkStale(gone.held);
        }
        const tenant = all[Math.floor(random() * all.length)];
        const instance = engine.instantiate(tenant.module);
        checkFresh(instance, tenant, cycle);
        if (interruptions && random() < RUN_AWAY_SHARE) {
          const buffer = (instance.exports.memory as GuardedMemory).buffer;
          runAway(instance, random);
          instance.dispose();
          assert.equal(buffer.byteLength, 0, "a stopped tenant's buffer is detached");
          ranAway++;
          continue;
        }
        live.push({ instance, held: scribble(instance, random) });
      }
      if (interruptions) assert.ok(ranAway > cycles / 200, `${ranAway} tenants ran away`);
      for (const { instance, held } of live) {
        instance.dispose();
        checkStale(held);
      }
      const stats = engine.stats();
      assert.equal(stats.liveInstances, 0);
      assert.equal(stats.runningInstances, 0);
      if (interruptions && name.startsWith("pooling")) {
        // A stopped tenant's memory is never pooled again: each one was replaced.
        assert.ok(stats.hostMemoriesReplaced >= ranAway, `${stats.hostMemoriesReplaced} replaced`);
      }
    });
  }
});
