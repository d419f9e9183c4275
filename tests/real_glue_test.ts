// Real glue, unchanged: tiktoken's own wasm-bindgen glue (tiktoken_bg.js) driving pooled
// instances through their exports encodes exactly as it does on the runtime's own instance,
// with a fresh pooled instance per encoding, 1,000 times.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { readRealModule, realModules } from "./fixtures/npm_modules.ts";

const CYCLES = 1_000;

/** The parts of tiktoken_bg.js the test drives. */
interface TiktokenGlue {
  __wbg_set_wasm(exports: unknown): void;
  Tiktoken: new (ranks: string, special: Record<string, number>, pattern: string) => {
    encode(text: string, allowed?: string[] | "all"): Uint32Array;
    decode(tokens: Uint32Array): Uint8Array;
    token_byte_values(): unknown;
    free(): void;
  };
}

const tiktoken = realModules().find((m) => m.name === "tiktoken")!;
const gluePath = tiktoken.path.replace(/tiktoken_bg\.wasm$/, "tiktoken_bg.js");

// A small byte-pair encoding: every byte, then a few merges, so that a Tiktoken is made in
// microseconds (the packaged encodings take ~0.5 s each to load).
function smallRanks(): string {
  const lines: string[] = [];
  const b64 = (bytes: number[]): string => btoa(String.fromCharCode(...bytes));
  for (let b = 0; b < 256; b++) lines.push(`${b64([b])} ${b}`);
  const merges = ["he", "ll", "o ", "wo", "rl", "hell", "ld", " w", "in", "th", "the", "ing"];
  merges.forEach((m, i) => lines.push(`${b64([...m].map((c) => c.charCodeAt(0)))} ${256 + i}`));
  return lines.join("\n");
}

const PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
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
  const encoder = new glue.Tiktoken(smallRanks(), SPECIAL, PATTERN);
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
    const glue = await import(pathToFileURL(gluePath).href) as TiktokenGlue;
    const bytes = readRealModule(tiktoken);
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
