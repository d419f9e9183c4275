/**
 * Configuration: the allocation strategy and, for pooling, the limits every module and the
 * pool must respect. Names and defaults follow Wasmtime's pooling allocator.
 *
 * @module
 */

import { ArgumentError, LimitError } from "./errors.ts";
import { checkOptions, type OptionNames } from "./options.ts";

/** Limits a module must satisfy to be instantiated by a pooling engine. */
export interface ModuleLimits {
  /** Imported functions, at most. */
  readonly importedFunctions: number;
  /** Imported tables, at most. */
  readonly importedTables: number;
  /** Imported memories, at most. */
  readonly importedMemories: number;
  /** Imported globals, at most. */
  readonly importedGlobals: number;
  /** Entries of the type section, at most. */
  readonly types: number;
  /** Defined functions, at most. */
  readonly functions: number;
  /** Defined tables, at most. */
  readonly tables: number;
  /** Defined memories, at most. */
  readonly memories: number;
  /** Defined globals, at most. */
  readonly globals: number;
  /** Elements of any one table, at most (its minimum, and how far it can grow). */
  readonly tableElements: number;
  /** 64 KiB pages of any one memory, at most (its minimum, and how far it can grow). */
  readonly memoryPages: number;
}

/** Limits of the pool itself. */
export interface InstanceLimits {
  /** Instances alive at once, at most: the number of slots. */
  readonly count: number;
  /**
   * Address space reserved for each memory slot, in bytes: rounded up to 64 KiB and capped
   * at 8 GiB. What lies beyond a memory's current size is its guard region.
   */
  readonly memoryReservationSize: number;
}

/** Wasmtime's default module limits. */
export const DEFAULT_MODULE_LIMITS: Readonly<ModuleLimits> = Object.freeze({
  importedFunctions: 1000,
  importedTables: 0,
  importedMemories: 0,
  importedGlobals: 0,
  types: 100,
  functions: 10000,
  tables: 1,
  memories: 1,
  globals: 10,
  tableElements: 10000,
  memoryPages: 160,
});

/** Wasmtime's default instance limits: 1000 instances, 6 GiB per memory slot. */
export const DEFAULT_INSTANCE_LIMITS: Readonly<InstanceLimits> = Object.freeze({
  count: 1000,
  memoryReservationSize: 6 * 2 ** 30,
});

/**
 * How a pooling engine picks a free slot. `"next-available"`: module affinity first (a free slot
 * whose last tenant was the same module, the most recently freed, so its image mapping and
 * resident pages are reused), then a never-used slot while fewer than `maxUnusedWarmSlots` free
 * slots are kept for other modules, else the least recently freed slot. `"random"`: any free
 * slot, uniformly (no affinity): a tenant cannot predict its neighbour.
 */
export type PoolingAllocationStrategy = "next-available" | "random";

/** Options of {@linkcode InstanceAllocationStrategy.pooling}; everything is optional. */
export interface PoolingOptions {
  /**
   * `"next-available"` (default): module affinity, then never-used slots, then the least
   * recently freed; `"random"`: any free slot. See {@linkcode PoolingAllocationStrategy}.
   */
  readonly strategy?: PoolingAllocationStrategy;
  /** Overrides of {@linkcode DEFAULT_MODULE_LIMITS}. */
  readonly moduleLimits?: Partial<ModuleLimits>;
  /** Overrides of {@linkcode DEFAULT_INSTANCE_LIMITS}. */
  readonly instanceLimits?: Partial<InstanceLimits>;
  /**
   * Serve linear memory through userfaultfd (Linux): pages are filled by a handler thread on
   * first touch, from the module's image or with zeros, so instantiation costs the same
   * whatever the image size; the pages a module's instances used before are filled at
   * instantiation instead (working-set prefetch), without a round trip to the handler.
   * Default false. Throws {@linkcode UffdUnavailableError} at engine creation where the kernel
   * or privileges refuse it; never falls back silently.
   */
  readonly uffd?: boolean;
  /**
   * Bytes of each instance's stack slot (rounded up to the host page, below a PROT_NONE guard
   * page). Default 0: no stack pool, since wasmpool does not run code on pool stacks.
   */
  readonly stackSize?: number;
  /** Seed of the `"random"` strategy's generator; default: from `Math.random()`. */
  readonly seed?: number;
  /**
   * Bytes at the start of each memory (rounded up to the host page) that a reset restores in
   * place instead of handing back to the kernel: to the module's image (by copy from it), to
   * zeros past it. Default 65536: a reused slot's first wasm page costs no page fault, no
   * madvise, and in uffd mode no round trip to the handler; only its pages that may have been
   * written are restored, found through /proc/self/pagemap. Cost: up to this many bytes stay
   * resident per slot between tenants. 0 gives every page back on reset (Wasmtime's default).
   * A slot given to another module drops the kept pages (uffd) or maps that module's image
   * over them (mprotect).
   */
  readonly memoryKeepResident?: number;
  /**
   * `"next-available"`: how many free slots may stay affine to modules (Wasmtime's
   * `max_unused_warm_slots`). While fewer are, a module without a slot of its own gets a
   * never-used slot, leaving other modules' slots (their images mapped) for them; beyond it,
   * the least recently freed slot is taken from its module. Default: 100, or `count` when the
   * pool is smaller. A whole number from 0 to `instanceLimits.count`. Ignored by `"random"`.
   */
  readonly maxUnusedWarmSlots?: number;
  /**
   * Whether running instances of a module that allows it are recycled: reset in place when
   * their tenant disposes them and handed to the next tenant, instead of made anew (see
   * `Module#notRecyclable`). A tenant's exported functions are then wrappers (a call costs a
   * few nanoseconds more) instead of the runtime's own. Default: true.
   */
  readonly recycleInstances?: boolean;
  /**
   * Whether a recycled instance's memories are reset off the disposing thread's path: when
   * another idle instance of its module can serve the next tenant meanwhile (keep two or more
   * warm: `Engine#warm`), the reset is queued to wasmpool's reset thread, which does it on
   * another core. The thread spins 50 µs after its last reset, then sleeps; while it sleeps, a
   * lone disposal is reset inline (waking the thread would cost what the reset does), and one
   * within 50 µs of the previous wakes it. A memory still queued when it is wanted is reset
   * then. Only on the main thread (a Worker's memories may be freed with its isolate at any
   * time). Counted in `hostResetsBackground`, `hostResetsInline`, `hostResetsClaimed`.
   *
   * Default: false. Measured here (2 cores, quiet; `bench/reset_thread_loop.ts`): in a plain
   * loop of one module, a cycle of the small module costs 1.6-2.0 µs with it against 1.2 µs
   * without, and the 5 MiB-image module's is 10-20% faster in Deno and even in Bun (the reset
   * thread's page-table walks contend with the main thread for the process's memory map, and
   * the next tenant often waits for the thread), while the thread keeps a second core busy
   * spinning for as long as disposals come faster than 50 µs apart (`bench/run_bench.ts`,
   * under mitata, shows it ahead in three of four cases: see the README). Turn it on for
   * modules whose resets cost more than a few microseconds, with a core to spare.
   */
  readonly backgroundResets?: boolean;
  /**
   * How many tenants one recycled instance serves before it is destroyed and replaced by a new
   * one (`wasmtime serve`'s and Spin's `--max-instance-reuse-count`, Fastly's `maxRequests`).
   * Default: `Infinity`, no limit. A whole number from 1, or `Infinity`. Resets already leave
   * no tenant's bytes to the next, so this bounds what resets do not cover: state outside the
   * instance's memories, tables and globals that the runtime's engine keeps per instance (its
   * compiled-code caches, its allocations), and the blast radius of a bug in the reset itself.
   * Trade: each replacement costs a `new WebAssembly.Instance` and, for a module whose glue
   * initializes it, that initialization again. Spin defaults to 128 because its instances are
   * not reset (a reused instance keeps its previous request's state); wasmpool's are, so it
   * defaults to no limit. Counted in `stats().warmRetired`.
   */
  readonly maxInstanceReuse?: number;
  /**
   * Milliseconds after which idle recycled instances beyond `maxUnusedWarmSlots` (counted over
   * every module) are released, so that the warm set shrinks back after a burst (Spin's and
   * `wasmtime serve`'s `--idle-instance-timeout`, Fastly's `betweenRequestTimeoutMs`). Default:
   * 1000, Spin's. A positive number, or `Infinity` to keep them until the pool needs the room.
   * An instance is released between this long and 1.25 times this long after it went idle, by
   * a timer that runs only while some instance is beyond the kept number and never keeps the
   * process alive. The oldest idle instances go first; while tenants keep coming faster than
   * the timeout, every idle instance is handed out again in turn and none expires. Trade: a
   * burst's instances, and the memory they hold (a tiktoken tenant's 18 MiB), are kept this
   * long in case the burst comes back; Wasmtime's pool itself keeps its slots forever and only
   * bounds how many stay affine (`max_unused_warm_slots`). Counted in `stats().warmExpired`.
   */
  readonly idleInstanceTimeoutMs?: number;
  /**
   * How large, in 64 KiB wasm pages, a recycled instance's memory may have grown and still serve
   * the next tenant: a tenant that grew a memory to at most this many pages leaves its instance
   * recycled instead of replaced. Default 0: a tenant that grew any memory costs a new instance
   * (counted in `recycleFallbacks` and `recycledGrownReplaced`). A whole number from 0 to
   * `moduleLimits.memoryPages` (no memory grows past that limit, so a larger value could never
   * apply, and is refused with an `ArgumentError`).
   *
   * The memory is reset to the module's image with zeros beyond it, up to its grown size: no
   * byte of the previous tenant remains, grown part included. The grown pages are zeroed once,
   * when they are first taken in; from then on they are tracked like the rest, and a reset costs
   * what the tenant wrote (see `hostPagesRestored`).
   *
   * What the next tenant sees:
   * - Inside wasm, memory 0's size starts where a fresh instance's does: its `memory.size` and
   *   `memory.grow` are a logical size (the rewrite's, see the README's "Recycled instances"),
   *   which starts at the module's initial pages for every tenant and grows the real memory
   *   only past the grown (physical) size. So the allocators that take new pages with
   *   `memory.grow` and keep their heap in memory (Rust's `dlmalloc`, so wasm-bindgen modules;
   *   wasi-libc's `sbrk`), which the reset returns to "no heap", reuse the kept pages: an
   *   instance serves tenant after tenant at the size the largest one needed. Only memory 0,
   *   when the module defines it (not imported), unshared, and its code grows it; other
   *   memories are seen at their grown size.
   * - In JavaScript, `memory.buffer.byteLength` is the physical size (the grown one). Accesses
   *   between the logical and the physical size do not trap: those pages are zeros, reset after
   *   each tenant.
   * - A memory grown from JavaScript (the exported memory's `grow`, as Emscripten's glue does
   *   in `emscripten_resize_heap`, computing the delta from `buffer.byteLength`) sets the
   *   logical size to the physical one, and from then on the module's tenants start at the
   *   physical size: Emscripten's `sbrk` compares its break with `memory.size`, and with a
   *   smaller size would ask JavaScript to grow the physical memory again for every tenant. So
   *   Emscripten modules see the grown size, and reuse the grown pages.
   * - The physical memory grows only when a tenant needs more than the earlier ones did; an
   *   instance whose memory passes this limit is replaced. Each tenant has the room to grow a
   *   fresh instance has (up to the module's maximum, or `moduleLimits.memoryPages`).
   *
   * A memory the runtime moved when it grew (JavaScriptCore gives only its first few memories a
   * fixed reservation; the others live in its heap and move on grow; V8 never moves one) is kept
   * too: adopted again at its new address and restored wholly by writing bytes, which costs its
   * size once per move, then tracked like the rest (counted in `hostMemoriesReadopted`).
   *
   * Not kept, whatever the limit: an instance whose table grew (replaced as before). A grown
   * memory never goes back to the pool of host memories when its instance is destroyed: that
   * pool serves memories only at their declared shape (counted in `hostMemoriesReplaced`).
   * Counted: `recycledGrown`, `recycledGrownReplaced`.
   */
  readonly recycleGrownMemoryPages?: number;
}

/** The resolved settings of a pooling strategy: every limit present and checked. */
export interface PoolingSettings {
  /** How a free slot is picked. */
  readonly strategy: PoolingAllocationStrategy;
  /** The module limits. */
  readonly moduleLimits: Readonly<ModuleLimits>;
  /** The instance limits. */
  readonly instanceLimits: Readonly<InstanceLimits>;
  /** Whether userfaultfd mode is on. */
  readonly uffd: boolean;
  /** Stack slot bytes; 0 for none. */
  readonly stackSize: number;
  /** Seed of the random strategy. */
  readonly seed: number;
  /** Bytes of each memory restored in place on reset. */
  readonly memoryKeepResident: number;
  /** Free slots that may stay affine to modules. */
  readonly maxUnusedWarmSlots: number;
  /** Whether running instances are recycled between tenants. */
  readonly recycleInstances: boolean;
  /** Whether recycled instances' memories are reset on the reset thread. */
  readonly backgroundResets: boolean;
  /** Tenants one recycled instance serves before it is replaced; `Infinity` for no limit. */
  readonly maxInstanceReuse: number;
  /** Milliseconds before idle instances beyond `maxUnusedWarmSlots` go; `Infinity`: never. */
  readonly idleInstanceTimeoutMs: number;
  /** Pages a recycled instance's memory may have grown to and still be recycled; 0: none. */
  readonly recycleGrownMemoryPages: number;
}

const WASM_PAGE_BYTES = 65536;
const DEFAULT_KEEP_RESIDENT_BYTES = 65536;
/** Wasmtime's default `max_unused_warm_slots`. */
const DEFAULT_MAX_UNUSED_WARM_SLOTS = 100;
const MAX_WASM_PAGES = 65536;
/** Spin's `--idle-instance-timeout` (1 s). */
const DEFAULT_IDLE_INSTANCE_TIMEOUT_MS = 1000;
/** The longest finite idle timeout: what `setTimeout` can wait (2^31 - 1 ms), times four. */
const MAX_IDLE_INSTANCE_TIMEOUT_MS = 4 * (2 ** 31 - 1);
const U32_MAX = 0xffff_ffff;

function checkCount(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new LimitError(
      `${name} must be a whole number from ${min} to ${max}, got ${String(value)}`,
    );
  }
  return value;
}

function resolveModuleLimits(overrides: Partial<ModuleLimits> = {}): Readonly<ModuleLimits> {
  // The defaults name every limit: they are the list of known names.
  checkOptions(overrides, DEFAULT_MODULE_LIMITS, "moduleLimits in pooling()");
  const limits: Record<string, number> = { ...DEFAULT_MODULE_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    limits[key] = checkCount(`moduleLimits.${key}`, value, 0, U32_MAX);
  }
  if (limits.memoryPages > MAX_WASM_PAGES) {
    throw new LimitError(
      `module memory page limit of ${limits.memoryPages} exceeds the maximum of ${MAX_WASM_PAGES}`,
    );
  }
  return Object.freeze(limits as unknown as ModuleLimits);
}

function resolveInstanceLimits(
  overrides: Partial<InstanceLimits> = {},
): Readonly<InstanceLimits> {
  checkOptions(overrides, DEFAULT_INSTANCE_LIMITS, "instanceLimits in pooling()");
  const limits: Record<string, number> = { ...DEFAULT_INSTANCE_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    limits[key] = value as number;
  }
  if (limits.count === 0) throw new LimitError("the instance count limit cannot be zero");
  checkCount("instanceLimits.count", limits.count, 1, U32_MAX);
  checkCount(
    "instanceLimits.memoryReservationSize",
    limits.memoryReservationSize,
    0,
    Number.MAX_SAFE_INTEGER,
  );
  return Object.freeze(limits as unknown as InstanceLimits);
}

/** The memory slot size the pool uses: rounded up to 64 KiB and capped at 8 GiB. */
export function memorySlotBytes(memoryReservationSize: number): number {
  const rounded = Math.ceil(memoryReservationSize / WASM_PAGE_BYTES) * WASM_PAGE_BYTES;
  return Math.min(rounded, 8 * 2 ** 30);
}

/** The name of every pooling option (see `checkOptions`): a new option is one line here. */
const POOLING_OPTIONS: OptionNames<PoolingOptions> = {
  strategy: true,
  moduleLimits: true,
  instanceLimits: true,
  uffd: true,
  stackSize: true,
  seed: true,
  memoryKeepResident: true,
  maxUnusedWarmSlots: true,
  recycleInstances: true,
  backgroundResets: true,
  maxInstanceReuse: true,
  idleInstanceTimeoutMs: true,
  recycleGrownMemoryPages: true,
};

// Engine.attach passes a handle's PoolingSettings back to pooling(): every setting must be an
// option too, or attach would refuse it. The compiler checks that here.
const SETTINGS_ARE_OPTIONS: OptionNames<PoolingSettings> = POOLING_OPTIONS;
void SETTINGS_ARE_OPTIONS;

function resolvePooling(options: PoolingOptions): PoolingSettings {
  checkOptions(options, POOLING_OPTIONS, "pooling()");
  const strategy = options.strategy ?? "next-available";
  if (strategy !== "next-available" && strategy !== "random") {
    throw new LimitError(
      `pooling strategy must be "next-available" or "random", got ${JSON.stringify(strategy)}`,
    );
  }
  const moduleLimits = resolveModuleLimits(options.moduleLimits);
  const instanceLimits = resolveInstanceLimits(options.instanceLimits);
  const reservation = memorySlotBytes(instanceLimits.memoryReservationSize);
  if (moduleLimits.memoryPages * WASM_PAGE_BYTES > reservation) {
    throw new LimitError(
      `module memory page limit of ${moduleLimits.memoryPages} pages exceeds the memory ` +
        `reservation size limit of ${instanceLimits.memoryReservationSize} bytes`,
    );
  }
  const stackSize = checkCount("stackSize", options.stackSize ?? 0, 0, 2 ** 40);
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
  checkCount("seed", seed, 0, Number.MAX_SAFE_INTEGER);
  const memoryKeepResident = checkCount(
    "memoryKeepResident",
    options.memoryKeepResident ?? DEFAULT_KEEP_RESIDENT_BYTES,
    0,
    8 * 2 ** 30,
  );
  const count = instanceLimits.count;
  const maxUnusedWarmSlots = options.maxUnusedWarmSlots ??
    Math.min(DEFAULT_MAX_UNUSED_WARM_SLOTS, count);
  if (
    typeof maxUnusedWarmSlots !== "number" || !Number.isInteger(maxUnusedWarmSlots) ||
    maxUnusedWarmSlots < 0
  ) {
    throw new LimitError(
      `maxUnusedWarmSlots must be a whole number from 0 to ${count}, got ${
        String(maxUnusedWarmSlots)
      }`,
    );
  }
  if (maxUnusedWarmSlots > count) {
    throw new LimitError(
      `maxUnusedWarmSlots of ${maxUnusedWarmSlots} exceeds the instance count limit of ${count}`,
      { limit: "maxUnusedWarmSlots", value: maxUnusedWarmSlots, maximum: count },
    );
  }
  const maxInstanceReuse = options.maxInstanceReuse ?? Infinity;
  if (maxInstanceReuse !== Infinity) {
    checkCount("maxInstanceReuse", maxInstanceReuse, 1, Number.MAX_SAFE_INTEGER);
  }
  const idleInstanceTimeoutMs = options.idleInstanceTimeoutMs ?? DEFAULT_IDLE_INSTANCE_TIMEOUT_MS;
  if (
    idleInstanceTimeoutMs !== Infinity &&
    !(typeof idleInstanceTimeoutMs === "number" && idleInstanceTimeoutMs > 0 &&
      idleInstanceTimeoutMs <= MAX_IDLE_INSTANCE_TIMEOUT_MS)
  ) {
    throw new LimitError(
      `idleInstanceTimeoutMs must be a number of milliseconds above 0 and at most ${MAX_IDLE_INSTANCE_TIMEOUT_MS}, or Infinity, got ${
        String(idleInstanceTimeoutMs)
      }`,
    );
  }
  const recycleGrownMemoryPages = resolveGrownPages(
    options.recycleGrownMemoryPages,
    moduleLimits.memoryPages,
  );
  return Object.freeze({
    strategy,
    moduleLimits,
    instanceLimits,
    uffd: options.uffd ?? false,
    stackSize,
    seed,
    memoryKeepResident,
    maxUnusedWarmSlots,
    recycleInstances: options.recycleInstances ?? true,
    backgroundResets: options.backgroundResets ?? false,
    maxInstanceReuse,
    idleInstanceTimeoutMs,
    recycleGrownMemoryPages,
  });
}

function resolveGrownPages(value: unknown, memoryPages: number): number {
  if (value === undefined) return 0;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_WASM_PAGES
  ) {
    throw new ArgumentError(
      `recycleGrownMemoryPages must be a whole number of pages from 0 to ${MAX_WASM_PAGES}, ` +
        `got ${String(value)}`,
    );
  }
  if (value > memoryPages) {
    throw new ArgumentError(
      `recycleGrownMemoryPages of ${value} pages exceeds moduleLimits.memoryPages of ` +
        `${memoryPages}: no memory can grow that far`,
    );
  }
  return value;
}

/** How an engine allocates instances: on demand, or from a pool reserved up front. */
export class InstanceAllocationStrategy {
  /** `"on-demand"` or `"pooling"`. */
  readonly kind: "on-demand" | "pooling";
  /** The pooling settings; `null` for on-demand. */
  readonly pooling: PoolingSettings | null;

  private constructor(kind: "on-demand" | "pooling", pooling: PoolingSettings | null) {
    this.kind = kind;
    this.pooling = pooling;
    Object.freeze(this);
  }

  /** Every memory is its own mapping, made at instantiation and unmapped at disposal. */
  static onDemand(): InstanceAllocationStrategy {
    return new InstanceAllocationStrategy("on-demand", null);
  }

  /**
   * A pool of instance slots, memories, tables (and stacks) reserved once when the engine is
   * created. Throws {@linkcode LimitError} for limits that cannot work together, and
   * `ArgumentError` for an option or limit it does not know (a misspelt name).
   */
  static pooling(options: PoolingOptions = {}): InstanceAllocationStrategy {
    return new InstanceAllocationStrategy("pooling", resolvePooling(options));
  }
}

/** Options of {@linkcode Config.withInterruption}; everything is optional. */
export interface InterruptionOptions {
  /**
   * How often the ticker thread advances the epoch, in milliseconds: deadlines are kept to
   * within about one tick. Default 1; from 0.1 to 1000. Engines with different ticks share the
   * one ticker of the process, which then ticks at the shortest.
   */
  readonly tickMs?: number;
}

/** The resolved settings of epoch interruption. */
export interface InterruptionSettings {
  /** The tick, in milliseconds. */
  readonly tickMs: number;
}

const DEFAULT_TICK_MS = 1;
const MIN_TICK_MS = 0.1;
const MAX_TICK_MS = 1000;

/** The name of every interruption option (see `checkOptions`). */
const INTERRUPTION_OPTIONS: OptionNames<InterruptionOptions> = { tickMs: true };

function resolveInterruption(options: InterruptionOptions): InterruptionSettings {
  checkOptions(options, INTERRUPTION_OPTIONS, "withInterruption()");
  const tickMs = options.tickMs ?? DEFAULT_TICK_MS;
  if (
    typeof tickMs !== "number" || !Number.isFinite(tickMs) || tickMs < MIN_TICK_MS ||
    tickMs > MAX_TICK_MS
  ) {
    throw new LimitError(
      `tickMs must be a number of milliseconds from ${MIN_TICK_MS} to ${MAX_TICK_MS}, got ${
        String(tickMs)
      }`,
    );
  }
  return Object.freeze({ tickMs });
}

/** Engine configuration. */
export class Config {
  #strategy: InstanceAllocationStrategy = InstanceAllocationStrategy.onDemand();
  #instanceFinalization = true;
  #interruption: InterruptionSettings | null = null;
  #fuel = false;

  /** The allocation strategy; on-demand unless set. */
  get allocationStrategy(): InstanceAllocationStrategy {
    return this.#strategy;
  }

  /** Whether an instance collected without `dispose()` gives its slot back; true unless set. */
  get instanceFinalization(): boolean {
    return this.#instanceFinalization;
  }

  /**
   * Sets whether an `Instance` that is garbage-collected without `dispose()` gives its slot back
   * (through a FinalizationRegistry). Default true. Turning it off saves the bookkeeping, measured
   * here at 8 to 50 ns per instantiate+dispose in Deno (registration itself is deferred to the end of
   * the job, so an instance disposed within it is never registered); an undisposed instance then
   * holds its slot until `engine.close()`. Returns this config.
   */
  withInstanceFinalization(enabled: boolean): this {
    this.#instanceFinalization = enabled === true;
    return this;
  }

  /** Epoch interruption's settings, or null when it is off (the default). */
  get interruption(): InterruptionSettings | null {
    return this.#interruption;
  }

  /** Whether fuel is on (off unless set). */
  get fuel(): boolean {
    return this.#fuel;
  }

  /**
   * Turns on epoch interruption, Wasmtime's `epoch_interruption`: the code of every module
   * compiled for the engine checks an epoch, which a native ticker thread advances every
   * `tickMs`, against the deadline of the call it runs in, at every function entry, loop header
   * and return from the host, so that `deadlineMs` (see `Engine#instantiate`) and
   * `Instance#setDeadline` can stop a guest that runs too long, even in a tight loop: the call
   * throws `DeadlineExceededError`. Off by default, and then modules carry no check
   * at all. Returns this config; throws `ArgumentError` for an option it does not know.
   *
   * @example
   * ```ts
   * using engine = new Engine(new Config().withInterruption({ tickMs: 1 }));
   * ```
   */
  withInterruption(options: InterruptionOptions = {}): this {
    this.#interruption = resolveInterruption(options);
    return this;
  }

  /**
   * Turns fuel on or off, Wasmtime's `consume_fuel`: the code of every module compiled for the
   * engine counts the instructions it runs (by each block's instruction count), and an
   * instance given `{ fuel: n }` at instantiation traps with `FuelExhaustedError`
   * once it has used n. The same program with the same fuel stops at the same point on every
   * run and in every runtime: limits for tests and billing. `Instance#fuelConsumed` reads the
   * count. Returns this config.
   */
  withFuel(enabled = true): this {
    this.#fuel = enabled === true;
    return this;
  }

  /** Sets the allocation strategy and returns this config. */
  withAllocationStrategy(strategy: InstanceAllocationStrategy): this {
    if (!(strategy instanceof InstanceAllocationStrategy)) {
      throw new LimitError(
        "withAllocationStrategy expects InstanceAllocationStrategy.onDemand() or .pooling()",
      );
    }
    this.#strategy = strategy;
    return this;
  }
}
