// One engine used from several Workers at once: every worker attaches by handle, no slot is
// handed out twice, none is lost, and stats() adds up.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  InstanceAllocationStrategy,
  Module,
  type PoolingOptions,
} from "../mod.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";
import type { WorkerResult, WorkerTask } from "./fixtures/pool_worker.ts";
import type { RunWorkerResult, RunWorkerTask } from "./fixtures/run_worker.ts";

const WORKERS = 4;
const CYCLES = 10_000;

function pooled(options: PoolingOptions): Engine {
  return new Engine(
    new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling(options)),
  );
}

/** Runs `task` on a new Worker of the fixture `script`: its one message, then it is ended. */
function runWorkerOnce<Task extends { worker: number }, Result>(
  script: string,
  task: Task,
): Promise<Result> {
  const worker = new Worker(new URL(`./fixtures/${script}`, import.meta.url).href, {
    type: "module",
  });
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<Result>) => {
      worker.terminate();
      resolve(event.data);
    };
    worker.onerror = (event: ErrorEvent) => {
      worker.terminate();
      reject(new Error(`worker ${task.worker} failed: ${event.message}`));
    };
    worker.postMessage(task);
  });
}

function runWorker(task: WorkerTask): Promise<WorkerResult> {
  return runWorkerOnce("pool_worker.ts", task);
}

for (const uffd of [false, true]) {
  describe(`an engine shared by ${WORKERS} workers${uffd ? " (uffd)" : ""}`, () => {
    it(`${WORKERS} × ${CYCLES} cycles: no slot twice, none lost, stats add up`, async () => {
      using engine = pooled({
        uffd,
        strategy: "random",
        moduleLimits: { memoryPages: 1 },
        // Fewer slots than workers would make the pool full on purpose; more keeps it simple.
        instanceLimits: { count: WORKERS + 2, memoryReservationSize: 1 << 20 },
      });
      const owners = new SharedArrayBuffer(4 * 4096);
      const handle = engine.handle();
      const results = await Promise.all(
        Array.from(
          { length: WORKERS },
          (_, worker) => runWorker({ handle, worker, cycles: CYCLES, owners }),
        ),
      );
      for (const r of results) {
        assert.equal(r.error, null, `worker ${r.worker}: ${r.error}`);
        assert.equal(r.cycles, CYCLES, `worker ${r.worker} lost cycles`);
        assert.equal(r.doubleHandOuts, 0, `worker ${r.worker} got a slot another held`);
        assert.equal(r.dirtySlots, 0, `worker ${r.worker} saw a previous tenant's bytes`);
        assert.equal(r.poolFull, 0);
      }
      const stats = engine.stats();
      assert.equal(stats.instantiations, WORKERS * CYCLES);
      assert.equal(stats.deallocations, WORKERS * CYCLES);
      assert.equal(stats.liveInstances, 0);
      assert.equal(stats.quarantinedSlots, 0);
      // Every slot is back: the whole pool can be held at once.
      const module = new Module(
        engine,
        buildModule({ memories: [{ min: 1, max: 1, shared: false }] }),
      );
      const all = Array.from({ length: WORKERS + 2 }, () => engine.allocate(module));
      for (const instance of all) instance.dispose();
    });
  });
}

function runRunWorker(task: RunWorkerTask): Promise<RunWorkerResult> {
  return runWorkerOnce("run_worker.ts", task);
}

describe(`running instances in ${WORKERS} workers attached to one engine`, () => {
  it("hold no more instances than instanceLimits.count between them, each fresh", async () => {
    const COUNT = 6;
    using engine = pooled({ instanceLimits: { count: COUNT } });
    const held = new SharedArrayBuffer(8);
    const handle = engine.handle();
    const results = await Promise.all(Array.from(
      { length: WORKERS },
      (_, worker) => runRunWorker({ handle, worker, cycles: 2_000, hold: COUNT, held }),
    ));
    let instantiated = 0;
    let poolFull = 0;
    for (const r of results) {
      assert.equal(r.error, null, `worker ${r.worker}: ${r.error}`);
      assert.equal(r.dirty, 0, `worker ${r.worker} saw a previous tenant's state`);
      instantiated += r.instantiated;
      poolFull += r.poolFull;
    }
    const counts = new Int32Array(held);
    assert.equal(counts[0], 0);
    assert.ok(counts[1] <= COUNT, `${counts[1]} instances were alive at once`);
    assert.ok(poolFull > 0, "the workers, wanting more than the pool holds, met its limit");
    const stats = engine.stats();
    assert.equal(stats.instantiations, instantiated);
    assert.equal(stats.deallocations, instantiated);
    assert.equal(stats.liveInstances, 0);
  });
});

describe("engine handles", () => {
  it("an attached engine shares the pool; the pool lives until the last holder closes", () => {
    const owner = pooled({
      moduleLimits: { memoryPages: 1 },
      instanceLimits: { count: 2, memoryReservationSize: 1 << 20 },
    });
    const attached = Engine.attach(owner.handle());
    const module = new Module(
      attached,
      buildModule({ memories: [{ min: 1, max: 1, shared: false }] }),
    );
    const a = attached.allocate(module);
    const b = owner.allocate(new Module(owner, buildModule({})));
    assert.equal(owner.stats().liveInstances, 2);
    b.dispose();
    owner.close();
    // The owner is closed, but the attached engine still holds the pool.
    new Uint8Array(a.memories[0].buffer)[0] = 1;
    assert.equal(attached.stats().liveInstances, 1);
    const handle = attached.handle();
    attached.close();
    assert.throws(() => a.memories, DisposedError);
    assert.throws(() => Engine.attach(handle), DisposedError);
  });

  it("a forged or stale id attaches to nothing", () => {
    assert.throws(() => Engine.attach({ id: 0x7fff_ffff, pooling: null }), DisposedError);
  });
});
