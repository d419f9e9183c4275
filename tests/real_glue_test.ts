// Real glue, unchanged: tiktoken's own wasm-bindgen glue (tiktoken_bg.js) driving pooled
// instances through their exports encodes exactly as it does on the runtime's own instance,
// with a fresh pooled instance per encoding, 1,000 times.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { readRealModule } from "./fixtures/npm_modules.ts";
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
    assert.deepEqual(expected!.decoded, TEXTS);
    const stats = engine.stats();
    assert.equal(stats.liveInstances, 0);
    // Every tenant here grows its memory (the encoder's heap): a grown memory cannot be handed
    // to the next tenant at the module's initial size, so it is replaced, and counted.
    assert.equal(stats.hostMemoriesReused + stats.hostMemoriesCreated, CYCLES);
    assert.equal(stats.hostMemoriesCreated, stats.hostMemoriesReplaced + stats.hostMemories);
  });
});
