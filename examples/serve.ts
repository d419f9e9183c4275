/**
 * An HTTP server that gives every request its own isolated WebAssembly instance (a tenant),
 * disposed when the response is written: what a plugin host, a serverless platform or a SaaS
 * running user code does. Runs unchanged in Deno and Bun:
 *
 * ```sh
 * deno run -A examples/serve.ts      # or: bun examples/serve.ts
 * curl -d 'hello world' 127.0.0.1:8000/tokens              # {"tokens":2}
 * curl -X POST '127.0.0.1:8000/run?n=1000'                  # {"result":...,"leftover":0}
 * curl -X POST '127.0.0.1:8000/run?spin=1'                  # 504 after DEADLINE_MS
 * curl 127.0.0.1:8000/stats
 * ```
 *
 * Routes:
 * - `POST /tokens`, body text: `{"tokens": n}`, tiktoken's cl100k count. Default mode: a tenant
 *   per request, of a snapshot (`instance.snapshot()`) of an instance whose encoder was built
 *   once at start: each tenant wraps the built encoder instead of building one (100-300 ms).
 *   `?mode=shared`: one instance and one encoder
 *   for every request, the unsafe upper bound (state leaks between requests). `?mode=fresh`: a
 *   `new WebAssembly.Instance` and a new encoder per request, what isolation costs without
 *   wasmpool.
 * - `POST /run?n=1000`: a small guest computation under a deadline (`DEADLINE_MS`, default 50),
 *   answering its result and what the tenant found in its memory (`leftover`, always 0: no
 *   tenant sees another's writes). `?spin=1` loops forever: 504 once the deadline stops it.
 *   `?trap=1` traps: 500. `?fuel=n` bounds the instructions: 429 past them. `?holdMs=n` holds
 *   the tenant across an await first, ended early when the client goes away.
 * - `GET /stats`: `engine.stats()` of the two engines, `{"tokens": ..., "run": ...}`.
 *
 * A request that throws, traps, runs out of fuel or time, or whose client disconnects leaves no
 * tenant behind (`using`), and no instance poisoned for the next (a stopped one is destroyed).
 *
 * Environment: `PORT` (default 8000; 0 picks a free port, printed), `HOSTNAME` (default
 * 127.0.0.1), `DEADLINE_MS` (default 50), `TIKTOKEN_DIR`, the directory of the `tiktoken` npm
 * package (`tiktoken_bg.wasm`, `tiktoken_bg.js`, `encoders/cl100k_base.json`), by default the
 * pinned fixture of a checkout, `.tools/fixtures/node_modules/tiktoken/`. On SIGINT or SIGTERM
 * the server stops, the engines close and the process exits by itself.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import process from "node:process";
import {
  ArgumentError,
  Config,
  DeadlineExceededError,
  Engine,
  FuelExhaustedError,
  InstanceAllocationStrategy,
  type InstanceImports,
  Module,
  type PoolingOptions,
  WasmpoolError,
} from "../mod.ts";

/** The parts of tiktoken's wasm-bindgen glue (`tiktoken_bg.js`) the server drives. */
interface TiktokenGlue {
  __wbg_set_wasm(exports: unknown): void;
  Tiktoken: {
    new (ranks: string, special: Record<string, number>, pattern: string): Encoder;
    __wrap(ptr: number): Encoder;
  };
}

/** A glue encoder over a pointer into one instance's memory. */
interface Encoder {
  readonly __wbg_ptr: number;
  encode_ordinary(text: string): Uint32Array;
  /** Forgets the pointer without freeing it in the instance (whose memory goes anyway). */
  __destroy_into_raw(): number;
}

/** cl100k_base as the tiktoken package ships it. */
interface Encoding {
  readonly pat_str: string;
  readonly special_tokens: Record<string, number>;
  readonly bpe_ranks: string;
}

const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const DEADLINE_MS = Number(env("DEADLINE_MS", "50"));
const TIKTOKEN_DIR = env(
  "TIKTOKEN_DIR",
  new URL("../.tools/fixtures/node_modules/tiktoken/", import.meta.url).pathname,
).replace(/\/?$/, "/");
const GLUE_SOURCE = readFileSync(TIKTOKEN_DIR + "tiktoken_bg.js", "utf8");
const TIKTOKEN_BYTES = readFileSync(TIKTOKEN_DIR + "tiktoken_bg.wasm");
const CL100K = JSON.parse(
  readFileSync(TIKTOKEN_DIR + "encoders/cl100k_base.json", "utf8"),
) as Encoding;

/**
 * A copy of the glue of its own: wasm-bindgen glue keeps one current instance, and views of its
 * memory refreshed only once they read as detached, at module level; each mode needs its own.
 */
async function loadGlue(tag: string): Promise<TiktokenGlue> {
  const source = `${GLUE_SOURCE}\n// serve.ts: the ${tag} copy\n`;
  // Base64: Bun cuts a percent-encoded data URL short.
  const url = `data:text/javascript;base64,${Buffer.from(source).toString("base64")}`;
  return await import(url) as TiktokenGlue;
}

/** A text with each kind of piece cl100k's pattern splits: words, contractions, numbers,
 * punctuation, spaces, newlines, non-ASCII letters. */
const WARM_UP_TEXT = "Warm up: it's the 1st of 2,048 requests; numbers 3.14159 and 42!\n\t" +
  "  Zürich, café, naïve — done?  Yes.\n\n";

function newEncoder(glue: TiktokenGlue): Encoder {
  return new glue.Tiktoken(CL100K.bpe_ranks, CL100K.special_tokens, CL100K.pat_str);
}

/**
 * The pooling engine of the tokens route. A tenant that allocates past the snapshot's heap grows
 * the memory (Rust's allocator takes new pages with `memory.grow`): its instance is still
 * recycled, up to 1024 pages (`recycleGrownMemoryPages`).
 */
function tokensEngine(): Engine {
  const options: PoolingOptions = {
    instanceLimits: { count: 16 },
    moduleLimits: { memoryPages: 1024 },
    recycleGrownMemoryPages: 1024,
  };
  return new Engine(
    new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling(options)),
  );
}

/** Tokens: default (a tenant each), shared and fresh. */
class Tokens {
  readonly engine: Engine = tokensEngine();
  /** What tenants instantiate: the snapshot of an instance with a built encoder. */
  readonly module: Module;
  /** The encoder's pointer in the snapshot's memory. */
  readonly encoderPtr: number;
  readonly #tenantGlue: TiktokenGlue;
  readonly #imports: InstanceImports;
  readonly #sharedEncoder: Encoder;
  readonly #freshGlue: TiktokenGlue;
  readonly #compiled: WebAssembly.Module;

  private constructor(tenant: TiktokenGlue, shared: TiktokenGlue, fresh: TiktokenGlue) {
    this.#tenantGlue = tenant;
    this.#imports = { "./tiktoken_bg.js": { ...tenant } } as InstanceImports;
    const module = new Module(this.engine, TIKTOKEN_BYTES);
    // The encoder is built once, in the instance the snapshot is taken of; tenants wrap it.
    {
      using first = this.engine.instantiate(module, this.#imports);
      tenant.__wbg_set_wasm(first.exports);
      const encoder = newEncoder(tenant);
      this.encoderPtr = encoder.__wbg_ptr;
      // One encode before the snapshot builds what tiktoken builds lazily on its first (its
      // regex's caches), so that tenants start with it: 17-25 pages written and reset per
      // request instead of 80 (measured on the bench's 1 KB text).
      encoder.encode_ordinary(WARM_UP_TEXT);
      this.module = first.snapshot();
      encoder.__destroy_into_raw();
    }
    this.#compiled = new WebAssembly.Module(TIKTOKEN_BYTES);
    const sharedInstance = new WebAssembly.Instance(this.#compiled, {
      "./tiktoken_bg.js": { ...shared },
    } as WebAssembly.Imports);
    shared.__wbg_set_wasm(sharedInstance.exports);
    this.#sharedEncoder = newEncoder(shared);
    this.#freshGlue = fresh;
  }

  /** Loads the glue copies and builds the start-up encoders. */
  static async make(): Promise<Tokens> {
    return new Tokens(await loadGlue("tenant"), await loadGlue("shared"), await loadGlue("fresh"));
  }

  /** The count in a tenant of its own. */
  tenant(text: string): number {
    using instance = this.engine.instantiate(this.module, this.#imports);
    const glue = this.#tenantGlue;
    glue.__wbg_set_wasm(instance.exports);
    const encoder = glue.Tiktoken.__wrap(this.encoderPtr);
    try {
      return encoder.encode_ordinary(text).length;
    } finally {
      // Never free()d: the glue's finalizer must not free into a later tenant, and the
      // tenant's memory is reset anyway.
      encoder.__destroy_into_raw();
    }
  }

  /** The count on the one shared instance (state leaks between requests). */
  shared(text: string): number {
    return this.#sharedEncoder.encode_ordinary(text).length;
  }

  /** The count on a new instance of the runtime's, with a new encoder. */
  fresh(text: string): number {
    const glue = this.#freshGlue;
    const instance = new WebAssembly.Instance(this.#compiled, {
      "./tiktoken_bg.js": { ...glue },
    } as WebAssembly.Imports);
    glue.__wbg_set_wasm(instance.exports);
    const encoder = newEncoder(glue);
    try {
      return encoder.encode_ordinary(text).length;
    } finally {
      encoder.__destroy_into_raw();
      // Detaches the glue's views of this memory, so that it reads the next instance's.
      (instance.exports.memory as WebAssembly.Memory).grow(0);
    }
  }
}

/**
 * The guest of `/run` (153 bytes), from this WAT:
 * ```wat
 * (module (memory 1 1) (data (i32.const 64) "guest")
 *   (func (export "run") (param $n i32) (result i32) (local $i i32) (local $acc i32)
 *     (block (loop (br_if 1 (i32.ge_u (local.get $i) (local.get $n)))
 *       (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $i)))
 *       (local.set $i (i32.add (local.get $i) (i32.const 1))) (br 0)))
 *     (i32.store (i32.const 0) (local.get $acc)) (local.get $acc))
 *   (func (export "leftover") (result i32) (i32.load (i32.const 0)))
 *   (func (export "spin") (loop (br 0)))
 *   (func (export "trap") unreachable))
 * ```
 */
const GUEST = Uint8Array.from([
  0,
  97,
  115,
  109,
  1,
  0,
  0,
  0,
  1,
  13,
  3,
  96,
  1,
  127,
  1,
  127,
  96,
  0,
  1,
  127,
  96,
  0,
  0,
  3,
  5,
  4,
  0,
  1,
  2,
  2,
  5,
  4,
  1,
  1,
  1,
  1,
  7,
  32,
  4,
  3,
  114,
  117,
  110,
  0,
  0,
  8,
  108,
  101,
  102,
  116,
  111,
  118,
  101,
  114,
  0,
  1,
  4,
  115,
  112,
  105,
  110,
  0,
  2,
  4,
  116,
  114,
  97,
  112,
  0,
  3,
  10,
  67,
  4,
  45,
  1,
  2,
  127,
  2,
  64,
  3,
  64,
  32,
  1,
  32,
  0,
  79,
  13,
  1,
  32,
  2,
  65,
  31,
  108,
  32,
  1,
  106,
  33,
  2,
  32,
  1,
  65,
  1,
  106,
  33,
  1,
  12,
  0,
  11,
  11,
  65,
  0,
  32,
  2,
  54,
  2,
  0,
  32,
  2,
  11,
  7,
  0,
  65,
  0,
  40,
  2,
  0,
  11,
  7,
  0,
  3,
  64,
  12,
  0,
  11,
  11,
  3,
  0,
  0,
  11,
  11,
  12,
  1,
  0,
  65,
  192,
  0,
  11,
  5,
  103,
  117,
  101,
  115,
  116,
]);

type GuestExports = {
  run(n: number): number;
  leftover(): number;
  spin(): void;
  trap(): void;
};

/** An engine whose guests can be stopped: deadlines (1 ms ticks) and fuel. */
const runEngine = new Engine(
  new Config().withInterruption({ tickMs: 1 }).withFuel().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count: 64 }, maxUnusedWarmSlots: 16 }),
  ),
);
const guest = new Module(runEngine, GUEST);

/** Waits `ms`, or until `signal` aborts (the client went away). */
function hold(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** A whole-number query parameter within `[0, max]`, or `fallback`. */
function count(url: URL, name: string, fallback: number, max: number): number {
  const text = url.searchParams.get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new ArgumentError(`${name} must be a whole number from 0 to ${max}, got ${text}`);
  }
  return value;
}

async function run(url: URL, request: Request): Promise<Response> {
  const n = count(url, "n", 1000, 2 ** 31 - 1);
  const holdMs = count(url, "holdMs", 0, 60_000);
  const fuel = count(url, "fuel", Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  using instance = runEngine.instantiate(guest, undefined, { deadlineMs: DEADLINE_MS, fuel });
  const exports = instance.exports as unknown as GuestExports;
  const leftover = exports.leftover();
  if (holdMs > 0) {
    // Only here: Deno warns about reading the signal of a request that is not held.
    await hold(holdMs, request.signal);
    if (request.signal.aborted) return json(499, { error: "the client went away" });
  }
  if (url.searchParams.get("spin") === "1") exports.spin();
  if (url.searchParams.get("trap") === "1") exports.trap();
  return json(200, { result: exports.run(n), leftover });
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** The status of what a request threw: the guest's fault, the client's, or ours. */
function failure(error: unknown): Response {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  if (error instanceof DeadlineExceededError) return json(504, { error: message });
  if (error instanceof FuelExhaustedError) return json(429, { error: message });
  if (error instanceof ArgumentError) return json(400, { error: message });
  if (error instanceof WebAssembly.RuntimeError) return json(500, { error: message });
  if (error instanceof WasmpoolError) return json(503, { error: message });
  return json(500, { error: message });
}

function handler(tokens: Tokens): (request: Request) => Promise<Response> {
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/tokens" && request.method === "POST") {
        const text = await request.text();
        const mode = url.searchParams.get("mode") ?? "tenant";
        if (mode === "tenant") return json(200, { tokens: tokens.tenant(text) });
        if (mode === "shared") return json(200, { tokens: tokens.shared(text) });
        if (mode === "fresh") return json(200, { tokens: tokens.fresh(text) });
        throw new ArgumentError(`mode must be "tenant", "shared" or "fresh", got ${mode}`);
      }
      if (url.pathname === "/run" && request.method === "POST") {
        return await run(url, request);
      }
      if (url.pathname === "/stats" && request.method === "GET") {
        return json(200, { tokens: tokens.engine.stats(), run: runEngine.stats() });
      }
      return json(404, { error: `no route ${request.method} ${url.pathname}` });
    } catch (error) {
      return failure(error);
    }
  };
}

/** A listening server of either runtime. */
interface Server {
  readonly port: number;
  stop(): Promise<void>;
}

interface BunServer {
  readonly port: number;
  stop(closeActive?: boolean): Promise<void> | void;
}

interface BunServe {
  serve(options: {
    port: number;
    hostname: string;
    fetch(request: Request): Promise<Response>;
  }): BunServer;
}

async function listen(
  port: number,
  hostname: string,
  fetch: (request: Request) => Promise<Response>,
): Promise<Server> {
  const bun: unknown = Reflect.get(globalThis, "Bun");
  if (typeof bun === "object" && bun !== null && "serve" in bun) {
    const server = (bun as BunServe).serve({ port, hostname, fetch });
    return { port: server.port, stop: async () => await server.stop(true) };
  }
  const { promise, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({ port, hostname, onListen: (addr) => resolve(addr.port) }, fetch);
  return { port: await promise, stop: () => server.shutdown() };
}

const tokens = await Tokens.make();
const server = await listen(
  Number(env("PORT", "8000")),
  env("HOSTNAME", "127.0.0.1"),
  handler(tokens),
);
console.log(
  `listening on http://127.0.0.1:${server.port} (tokens from snapshot tenants, ` +
    `deadline ${DEADLINE_MS} ms)`,
);

/** Runs `stop` on SIGINT and SIGTERM, once; Deno's own listeners where it is Deno. */
function onSignals(stop: () => Promise<void>): void {
  const signals = ["SIGINT", "SIGTERM"] as const;
  const deno = "Deno" in globalThis && !("Bun" in globalThis);
  const once = async (): Promise<void> => {
    for (const signal of signals) {
      if (deno) Deno.removeSignalListener(signal, once);
      else process.off(signal, once);
    }
    await stop();
  };
  for (const signal of signals) {
    if (deno) Deno.addSignalListener(signal, once);
    else process.on(signal, once);
  }
}

onSignals(async () => {
  await server.stop();
  tokens.engine.close();
  runEngine.close();
  console.log("stopped");
});
