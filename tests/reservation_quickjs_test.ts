// quickjs-emscripten through its own unchanged glue (Emscripten, imported memory `a.a`), one
// tenant per request on `engine.reserve(module)`: the glue takes the reservation's memory as
// its `wasmMemory` and instantiates through `instantiateWasm`. Outputs must equal a plain run's
// (the glue's own memory and instantiation), no tenant may see the previous one's marker, and
// tenants must be recycled. Runs unchanged under `deno test` and `bun test`.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Module } from "../mod.ts";
import { findBytes } from "./fixtures/find_bytes.ts";
import {
  evalInNewRuntime,
  loadQuickJS,
  loadQuickJSOn,
  QUICKJS_WASM_PATH,
  quickJSPoolingEngine,
} from "./fixtures/quickjs_glue.ts";
import { sameBytes } from "./fixtures/same_bytes.ts";

const TENANTS = 100;
const MARKER = "wasmpool-tenant-marker-";

function script(t: number): string {
  return `globalThis.marker = "${MARKER}" + ${t};
    const xs = []; for (let i = 0; i < 200; i++) xs.push((i * ${t + 7}) % 101);
    JSON.stringify({ t: ${t}, sum: xs.reduce((a, b) => a + b, 0), marker, sorted: xs.sort().slice(0, 5) })`;
}

function contains(buffer: ArrayBuffer, text: string): boolean {
  return findBytes(new Uint8Array(buffer), text) !== -1;
}

describe("quickjs-emscripten on reservations", () => {
  it(`serves ${TENANTS} tenants on recycled instances, outputs equal to a plain run's`, {
    timeout: 120_000,
  }, async () => {
    using engine = quickJSPoolingEngine();
    const module = new Module(engine, readFileSync(QUICKJS_WASM_PATH));
    const plain = await loadQuickJS();
    let fresh: Uint8Array | null = null;
    for (let t = 0; t < TENANTS; t++) {
      const reservation = engine.reserve(module);
      // Before instantiation the memory is the module's image: the same for every tenant.
      const before = new Uint8Array(reservation.memory.buffer);
      if (fresh === null) fresh = before.slice();
      else assert.ok(sameBytes(before, fresh), `tenant ${t}: memory is not the image`);
      const { quickjs, instance } = await loadQuickJSOn(reservation, module);
      assert.ok(!contains(reservation.memory.buffer, MARKER), `tenant ${t} sees a marker`);
      const output = evalInNewRuntime(quickjs, script(t));
      assert.deepEqual(output, evalInNewRuntime(plain, script(t)));
      // The marker was there to find: the scan above can fail.
      assert.ok(contains(reservation.memory.buffer, `${MARKER}${t}`));
      instance.dispose();
    }
    const stats = engine.stats();
    assert.equal(stats.runningInstances, 0);
    assert.ok(stats.warmHits >= 0.9 * TENANTS, `warmHits ${stats.warmHits} of ${TENANTS}`);
    assert.equal(stats.recycled + stats.recycleFallbacks, TENANTS);
    assert.equal(stats.hostMemoriesCreated, 1 + stats.hostMemoriesReplaced);
  });
});
