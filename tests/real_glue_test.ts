// Real glue, unchanged: tiktoken's own wasm-bindgen glue (tiktoken_bg.js) driving pooled
// instances through their exports encodes exactly as it does on the runtime's own instance,
// with a fresh pooled instance per encoding, 1,000 times; and with recycleGrownMemoryPages,
// its tenants (which all grow the memory) are served by recycled instances, none seeing the
// text an earlier tenant encoded.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { Config, Engine, type GuardedMemory, InstanceAllocationStrategy, Module } from "../mod.ts";
import { readRealModule } from "./fixtures/npm_modules.ts";
import { findBytes } from "./fixtures/find_bytes.ts";
import {
  smallRanks,
  TIKTOKEN,
  TIKTOKEN_GLUE_PATH,
  TIKTOKEN_PATTERN,
  type TiktokenGlue,
} from "./fixtures/tiktoken_glue.ts";

const CYCLES = 1_000;

const SPECIAL = { "<|endoftext|>": 300 };
const TEXTS = [
  "hello world",
  "the thing in the hell of the world",
  "pooled instances, <|endoftext|> and unicode: héllo wörld ✓",
  "x".repeat(5000),
];

interface Encoded {
  readonly tokens: number[][];
  readonly decoded: string[];
}

function encodeAll(glue: TiktokenGlue, exports: unknown): Encoded {
  glue.__wbg_set_wasm(exports);
  const encoder = new glue.Tiktoken(smallRanks(), SPECIAL, TIKTOKEN_PATTERN);
  try {
    const tokens = TEXTS.map((t) => Array.from(encoder.encode(t, "all")));
    const decoded = tokens.map((t) =>
      new TextDecoder().decode(encoder.decode(Uint32Array.from(t)))
    );
    return { tokens, decoded };
  } finally {
    encoder.free();
  }
}

/**
 * Detaches the views the glue keeps of `plain`'s memory (`grow(0)` detaches a memory's buffer),
 * so that the glue's next instance, a pooled one of another test, gets views of its own.
 */
function releaseGlue(plain: WebAssembly.Instance): void {
  (plain.exports.memory as WebAssembly.Memory).grow(0);
}

describe("tiktoken's own glue on pooled instances", () => {
  it(`encodes exactly as on the runtime's own instance, ${CYCLES} fresh instances`, async () => {
    // One glue module for every instance, as a program has. The glue keeps views of the last
    // instance's memory until they read as detached, which a disposed pooled instance's do,
    // and the runtime's own instance's never do: so the runtime's own instance comes last.
    const glue = await import(pathToFileURL(TIKTOKEN_GLUE_PATH).href) as TiktokenGlue;
    const bytes = readRealModule(TIKTOKEN);
    const imports = { "./tiktoken_bg.js": glue as unknown as Record<string, unknown> };
    let expected: Encoded | null = null;

    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({
        instanceLimits: { count: 4 },
        moduleLimits: { memoryPages: 1024 },
      }),
    ));
    const module = new Module(engine, bytes);
    for (let i = 0; i < CYCLES; i++) {
      using instance = engine.instantiate(module, imports);
      const got = encodeAll(glue, instance.exports);
      expected ??= got;
      if (i % 100 === 0) assert.deepEqual(got, expected, `cycle ${i}`);
      else {
        for (let t = 0; t < TEXTS.length; t++) {
          assert.deepEqual(got.tokens[t], expected.tokens[t], `cycle ${i}, text ${t}`);
        }
      }
    }
    const plain = new WebAssembly.Instance(
      new WebAssembly.Module(bytes),
      imports as WebAssembly.Imports,
    );
    assert.deepEqual(expected, encodeAll(glue, plain.exports), "the runtime's own instance");
    releaseGlue(plain);
    assert.deepEqual(expected!.decoded, TEXTS);
    const stats = engine.stats();
    assert.equal(stats.liveInstances, 0);
    // Every tenant here grows its memory (the encoder's heap): a grown memory cannot be handed
    // to the next tenant at the module's initial size, so it is replaced, and counted.
    assert.equal(stats.hostMemoriesReused + stats.hostMemoriesCreated, CYCLES);
    assert.equal(stats.hostMemoriesCreated, stats.hostMemoriesReplaced + stats.hostMemories);
  });

  it("with recycleGrownMemoryPages, serves 300 tenants from recycled instances, none seeing another's text", async () => {
    const TENANTS = 300;
    const MARKER = "wasmpool-marker-";
    const glue = await import(pathToFileURL(TIKTOKEN_GLUE_PATH).href) as TiktokenGlue;
    const bytes = readRealModule(TIKTOKEN);
    const imports = { "./tiktoken_bg.js": glue as unknown as Record<string, unknown> };
    const ranks = smallRanks();
    const text = (i: number): string => `${TEXTS[i % TEXTS.length]} ${MARKER}${i} ${i * 7919}`;
    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({
        instanceLimits: { count: 4 },
        moduleLimits: { memoryPages: 2048 },
        // Every tenant builds an encoder, and Rust's allocator takes new pages with memory.grow
        // (9 here): with the logical size (src/run/logical_memory.ts) each tenant grows from the
        // initial 91 pages again, into the pages the first one grew, so one instance serves all.
        recycleGrownMemoryPages: 1024,
      }),
    ));
    const module = new Module(engine, bytes);
    const got: number[][] = [];
    for (let i = 0; i < TENANTS; i++) {
      using instance = engine.instantiate(module, imports);
      const memory = new Uint8Array((instance.exports.memory as GuardedMemory).buffer);
      assert.equal(findBytes(memory, MARKER), -1, `tenant ${i} sees an earlier tenant's text`);
      glue.__wbg_set_wasm(instance.exports);
      const encoder = new glue.Tiktoken(ranks, SPECIAL, TIKTOKEN_PATTERN);
      try {
        got.push(Array.from(encoder.encode(text(i), "all")));
      } finally {
        encoder.free();
      }
      // The text stays in the memory after free: what the reset must take away.
      const after = new Uint8Array((instance.exports.memory as GuardedMemory).buffer);
      assert.ok(findBytes(after, `${MARKER}${i} `) >= 0, `tenant ${i}'s text is in its memory`);
    }
    const stats = engine.stats();
    assert.ok(
      stats.warmHits >= TENANTS * 0.9,
      `${stats.warmHits} of ${TENANTS} tenants served by recycled instances`,
    );
    assert.equal(stats.recycledGrownReplaced, 0, "the memory crept past the limit");
    assert.equal(stats.recycledGrown + stats.recycledGrownReplaced, TENANTS);
    assert.equal(stats.recycleFallbacks, stats.recycledGrownReplaced);
    // The runtime's own instance last (the glue's views of it never read as detached).
    const plain = new WebAssembly.Instance(
      new WebAssembly.Module(bytes),
      imports as WebAssembly.Imports,
    );
    glue.__wbg_set_wasm(plain.exports);
    const encoder = new glue.Tiktoken(ranks, SPECIAL, TIKTOKEN_PATTERN);
    try {
      for (let i = 0; i < TENANTS; i++) {
        assert.deepEqual(got[i], Array.from(encoder.encode(text(i), "all")), `tenant ${i}`);
      }
    } finally {
      encoder.free();
      releaseGlue(plain);
    }
  });
});
