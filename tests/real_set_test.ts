// The real set (tests/fixtures/real_set/): tiktoken, sql.js, @swc/wasm, brotli-wasm and
// quickjs-emscripten, each driven by its own unchanged glue, compute on wasmpool's instances
// exactly what they compute on the runtime's own; and 10,000 tiktoken tenants in a row, through
// its glue, never see the bytes of the tenant before them.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { Module } from "../mod.ts";
import {
  moduleBytes,
  plainTenant,
  pooledSource,
  pooledTenant,
  realSetDrivers,
  realSetEngine,
} from "./fixtures/real_set/mod.ts";
import { findBytes } from "./fixtures/find_bytes.ts";
import { SIMPLE_PATTERN, TiktokenDriver, tiktokenMarker } from "./fixtures/real_set/tiktoken.ts";

const SEEDS = [0, 1, 2, 7, 19];

describe("the real set through its own glue", () => {
  for (const driver of realSetDrivers()) {
    it(`${driver.name}: wasmpool tenants compute what plain instances compute`, async () => {
      await driver.load();
      const bytes = moduleBytes(driver);
      const compiled = new WebAssembly.Module(bytes);
      using engine = realSetEngine();
      const module = new Module(engine, bytes);
      // Twice over the seeds: the second round runs on instances a tenant already used
      // (recycled, or their memories reused) where wasmpool can.
      for (let round = 0; round < 2; round++) {
        for (const seed of SEEDS) {
          const expected = await plainTenant(driver, compiled, seed);
          const got = await pooledTenant(driver, engine, module, seed);
          assert.deepEqual(got, expected, `${driver.name}, round ${round}, seed ${seed}`);
        }
      }
      const stats = engine.stats();
      assert.equal(stats.instantiations, 2 * SEEDS.length);
      assert.equal(stats.liveInstances, 0);
    });
  }
});

// The count; REAL_SET_TENANTS sets another for a quick run.
const LEAK_TENANTS = Number(process.env.REAL_SET_TENANTS ?? 10_000);

describe("tiktoken tenants through its glue", () => {
  // Its own hang guard: seconds in a fresh process, but in `bun test tests/`, which runs every
  // file in one process, JavaScriptCore has given its few in-place memory reservations to
  // earlier files, so this memory lives in its heap and moves whenever a tenant grows it, and
  // each move costs a whole restore of the memory (measured: 630 s for the 10,000 there).
  it(`${LEAK_TENANTS} tenants in a row: none finds the previous tenant's text in memory`, {
    timeout: 1_200_000,
  }, async () => {
    // tiktoken's own split pattern takes milliseconds to compile in each tenant.
    const driver = new TiktokenDriver({ pattern: SIMPLE_PATTERN });
    await driver.load();
    const bytes = moduleBytes(driver);
    using engine = realSetEngine();
    const module = new Module(engine, bytes);
    const encoder = new TextEncoder();
    const scan = (exports: Record<string, unknown>): Uint8Array =>
      new Uint8Array((exports.memory as { buffer: ArrayBuffer }).buffer);
    let previous: Uint8Array | null = null;
    let ownFound = 0;
    for (let seed = 0; seed < LEAK_TENANTS; seed++) {
      const marker = encoder.encode(tiktokenMarker(seed));
      const text = `hello world, tenant ${seed}: ${tiktokenMarker(seed)} `.repeat(4);
      const tokens = driver.run(pooledSource(driver, engine, module), text, {
        before: (exports) => {
          const memory = scan(exports);
          if (previous !== null) {
            assert.equal(
              findBytes(memory, previous),
              -1,
              `tenant ${seed} sees tenant ${seed - 1}'s`,
            );
          }
          assert.equal(findBytes(memory, marker), -1, `tenant ${seed} sees its marker before work`);
        },
        // Every 100th tenant: the scan finds a marker that is there, the text the glue passed in.
        after: seed % 100 === 0
          ? (exports) => {
            assert.notEqual(findBytes(scan(exports), marker), -1, `tenant ${seed}'s own text`);
            ownFound++;
          }
          : undefined,
      });
      assert.ok(tokens.length > 10, `tenant ${seed} encoded ${tokens.length} tokens`);
      previous = marker;
      if (seed === 99 && LEAK_TENANTS > 1000) {
        // Stop before replaced memories pile up (see LEAK_TENANTS) if grown ones are not recycled.
        assert.ok(engine.stats().warmHits >= 90, "tiktoken's grown tenants are recycled");
      }
    }
    assert.equal(ownFound, Math.ceil(LEAK_TENANTS / 100));
    assert.equal(engine.stats().liveInstances, 0);
  });
});
