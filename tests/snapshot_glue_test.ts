// Snapshots of real modules through their own glue (see the README, "Snapshots"): the glue's
// JavaScript objects are not in a snapshot, so each toolchain's pattern is tested here.
// wasm-bindgen: tiktoken's cl100k encoder built once, snapshotted, and wrapped again in each
// tenant with `Tiktoken.__wrap(ptr)`. Emscripten with an imported memory: refused.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Config, Engine, InstanceAllocationStrategy, Module, SnapshotError } from "../mod.ts";
import { GlueCopies } from "./fixtures/glue_copies.ts";
import { readRealModule } from "./fixtures/npm_modules.ts";
import { cl100k, COUNTER_WAT, wat } from "./fixtures/snapshot_modules.ts";
import { TIKTOKEN, TIKTOKEN_GLUE_PATH, type TiktokenGlue } from "./fixtures/tiktoken_glue.ts";

/** The glue's class, with wasm-bindgen's static constructor over an existing pointer. */
type Encoder = InstanceType<TiktokenGlue["Tiktoken"]> & { __wbg_ptr: number };
type Glue = TiktokenGlue & { Tiktoken: { __wrap(ptr: number): Encoder } };

const TENANTS = 20;
/** quickjs-emscripten's release-sync variant: Emscripten, its memory imported (`a.a`). */
const QUICKJS = fileURLToPath(
  new URL(
    "../.tools/fixtures/node_modules/@jitl/quickjs-wasmfile-release-sync/dist/emscripten-module.wasm",
    import.meta.url,
  ),
);
const TEXTS = [
  "hello world",
  "Snapshots at run time: <|endoftext|> héllo wörld ✓ 12345 6789",
  "the quick brown fox jumps over the lazy dog. ".repeat(40),
];

function encodeAll(encoder: Encoder): number[][] {
  return TEXTS.map((t) => Array.from(encoder.encode(t, "all")));
}

describe("snapshots through real glue", () => {
  it(`wasm-bindgen (tiktoken, cl100k): ${TENANTS} tenants of the snapshot encode as the original`, async () => {
    // A glue of its own: the glue's module-level views of the last instance's memory may belong
    // to another test file's live instance (Bun runs every file in one process).
    const copies = new GlueCopies("snapshot-glue");
    const glue = await copies.import<Glue>(TIKTOKEN_GLUE_PATH);
    copies.remove();
    const imports = { "./tiktoken_bg.js": glue as unknown as Record<string, unknown> };
    const ranks = cl100k();
    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({
        instanceLimits: { count: 4 },
        moduleLimits: { memoryPages: 1024 },
      }),
    ));
    const module = new Module(engine, readRealModule(TIKTOKEN));
    const original = engine.instantiate(module, imports);
    glue.__wbg_set_wasm(original.exports);
    const built = new glue.Tiktoken(
      ranks.bpe_ranks,
      ranks.special_tokens,
      ranks.pat_str,
    ) as Encoder;
    built.encode("warm up", "all");
    // The pointer is the glue's only state the tenants need: noted before the snapshot.
    const ptr = built.__wbg_ptr;
    const snapshot = original.snapshot();
    const expected = encodeAll(built);
    // free() before dispose: the glue's finalizer would free into whatever instance is current.
    built.free();
    original.dispose();
    for (let i = 0; i < TENANTS; i++) {
      using tenant = engine.instantiate(snapshot, imports);
      glue.__wbg_set_wasm(tenant.exports);
      const encoder = glue.Tiktoken.__wrap(ptr);
      assert.deepEqual(encodeAll(encoder), expected, `tenant ${i}`);
      encoder.free();
    }
    assert.ok(engine.stats().warmHits >= TENANTS - 1);
    // The standalone binary on the runtime's own engine (last: its buffer never detaches, so
    // the glue's cached views of it would stay).
    const plain = new WebAssembly.Instance(
      new WebAssembly.Module(snapshot.toBytes()),
      imports as WebAssembly.Imports,
    );
    glue.__wbg_set_wasm(plain.exports);
    assert.deepEqual(encodeAll(glue.Tiktoken.__wrap(ptr)), expected, "the runtime's instance");
  });

  it("hand-written glue: JavaScript keeps offsets, noted before the snapshot", () => {
    using engine = new Engine();
    const module = new Module(engine, wat(COUNTER_WAT));
    const imports = { env: { host: (): number => 0 } };
    using original = engine.instantiate(module, imports);
    const text = new TextEncoder().encode("kept across the snapshot");
    const at = 8192; // the "glue" decides where its data lives: that offset is its state
    new Uint8Array((original.exports.memory as WebAssembly.Memory).buffer).set(text, at);
    const snapshot = original.snapshot();
    using tenant = engine.instantiate(snapshot, imports);
    const memory = tenant.exports.memory as WebAssembly.Memory;
    const read = new TextDecoder().decode(new Uint8Array(memory.buffer, at, text.length));
    assert.equal(read, "kept across the snapshot");
  });

  it("Emscripten with an imported memory (quickjs-emscripten): refused, the instance usable", () => {
    using engine = new Engine();
    const module = new Module(engine, readFileSync(QUICKJS));
    const imports: Record<string, Record<string, unknown>> = {};
    for (const i of module.imports) {
      const value = i.type.kind === "memory"
        ? new WebAssembly.Memory({ initial: i.type.type.min, maximum: i.type.type.max ?? 65536 })
        : (): number => 0;
      (imports[i.module] ??= {})[i.name] = value;
    }
    using instance = engine.instantiate(module, imports);
    assert.throws(() => instance.snapshot(), (e) => {
      assert.ok(e instanceof SnapshotError);
      assert.match(e.message, /imports memory a\.a/);
      return true;
    });
    assert.equal(instance.disposed, false);
  });
});
