/**
 * The epoch memory of this isolate (see interrupt.ts for its layout) and the process's epoch
 * ticker as engines hold it. The memory is made once per isolate, by the first engine with
 * interruption on, and kept for the isolate's life: the ticker's page is mapped over its first
 * host page (zig/src/ticker.zig), after the native side checked that the runtime reserved the
 * memory for itself, so that the mapping goes away with the memory and nothing else. Every
 * module compiled with interruption imports it.
 *
 * Time here is CLOCK_MONOTONIC in microseconds, as the ticker stores it: the page's word lags
 * the clock by less than a tick; {@linkcode EpochPage.now} reads the clock itself (the low 32
 * bits, through a call on the FFI fast path) and the page's word for the rest.
 *
 * @module
 */

import { ResourceError } from "../errors.ts";
import type { NativeLibrary } from "../ffi/symbols.ts";
import {
  DEADLINE_OFFSET,
  EPOCH_IMPORT,
  EPOCH_MAX_PAGES,
  EPOCH_PAGES,
  PAD_IMPORT,
  TRIPPED_OFFSET,
} from "./interrupt.ts";
import { memoryImportName } from "./rewrite.ts";

const TWO_32 = 2 ** 32;

/** Deadlines of this many ticks or more are counted from the epoch (see `EpochPage#enter`). */
export const COARSE_TICKS = 100;
const DEADLINE_WORD = DEADLINE_OFFSET / 4;
const TRIPPED_WORD = TRIPPED_OFFSET / 4;

/** Reasons zig/src/ticker.zig's `Error` names, by code. */
const TICKER_ERRORS: Record<number, string> = {
  [-1]: "every one of the ticker's 4096 holders is taken (engines with interruption on)",
  [-2]: "the tick is outside 0.1 to 1000 ms",
  [-3]: "the ticker's page could not be made",
  [-4]: "the ticker thread could not be started",
  [-5]: "the ticker holder is not one that was taken",
  [-6]: "the runtime did not reserve the epoch memory for itself, so the ticker's page cannot " +
    "be mapped over it soundly",
  [-7]: "the ticker's page could not be mapped over the epoch memory",
};

function tickerError(lib: NativeLibrary, code: number, what: string): ResourceError {
  const errno = code === -3 || code === -7 ? ` (errno ${lib.tickerErrno()})` : "";
  return new ResourceError(
    `interruption is unavailable: ${what}: ${TICKER_ERRORS[code] ?? `code ${code}`}${errno}`,
  );
}

/** The epoch memory of this isolate, and the deadline of the call running in it. */
export class EpochPage {
  /** The memory every module compiled with interruption imports. */
  readonly memory: WebAssembly.Memory;
  /** The memory of no pages a module without memories imports before it (interrupt.ts). */
  readonly pad: WebAssembly.Memory = new WebAssembly.Memory({ initial: 0, maximum: 0 });
  readonly #words: Uint32Array;
  readonly #lib: NativeLibrary;
  /** The deadline in force, in µs (Infinity: none), as the memory holds it. */
  deadlineUs = Infinity;
  /** That deadline's length in ms, from the start of the call that set it (for messages). */
  deadlineMs = 0;
  /** When the call that set it started, in µs. */
  startUs = 0;
  /** Calls into instances (through their wrappers) in progress on this thread. */
  depth = 0;
  // The deadline in force when each call in progress started, by depth: put back after it.
  readonly #outerUs: number[] = [];
  readonly #outerMs: number[] = [];
  readonly #outerStartUs: number[] = [];

  /** @internal Made once per isolate by {@linkcode epochPage}. */
  constructor(lib: NativeLibrary) {
    this.#lib = lib;
    this.memory = new WebAssembly.Memory({
      initial: EPOCH_PAGES,
      maximum: EPOCH_MAX_PAGES,
      shared: true,
    });
    const view = new Uint8Array(this.memory.buffer);
    const code = lib.tickerMap(lib.pointerOf(view)!, EPOCH_PAGES, EPOCH_MAX_PAGES);
    if (code !== 0) throw tickerError(lib, code, "mapping the epoch page");
    this.#words = new Uint32Array(this.memory.buffer);
    this.#write(Infinity);
  }

  /** The time now, in µs of CLOCK_MONOTONIC. */
  now(): number {
    const epoch = this.epoch();
    // The clock's low word is ahead of the epoch's by less than 2^32 µs: add the difference.
    return epoch + ((this.#lib.tickerNowLow() - epoch) >>> 0);
  }

  /** The epoch as the guests see it now, in µs. */
  epoch(): number {
    const words = this.#words;
    let hi = words[1];
    let lo = words[0];
    while (words[1] !== hi) {
      hi = words[1];
      lo = words[0];
    }
    return hi * TWO_32 + lo;
  }

  /**
   * A call starts, with a deadline of `ms` (null: none) from now: the deadline in force becomes
   * the earlier of the one in force and that one. Pair with {@linkcode EpochPage.leave}. A
   * deadline of {@linkcode COARSE_TICKS} ticks (`tickUs`) or more is counted from the epoch plus
   * a tick, which is never before the call's start, instead of from the clock (a read of the clock
   * costs 50 ns here): at most one tick more, one percent of it.
   */
  enter(ms: number | null, tickUs: number): void {
    const depth = this.depth;
    this.#outerUs[depth] = this.deadlineUs;
    this.#outerMs[depth] = this.deadlineMs;
    this.#outerStartUs[depth] = this.startUs;
    if (depth === 0) this.clearTripped();
    if (ms !== null) {
      const start = ms * 1000 >= COARSE_TICKS * tickUs ? this.epoch() + tickUs : this.now();
      const us = start + Math.ceil(ms * 1000);
      if (us < this.deadlineUs) this.setDeadline(us, ms, start);
    }
    this.depth = depth + 1;
  }

  /** The call started last ends, however: the deadline in force before it is put back. */
  leave(): void {
    const depth = --this.depth;
    this.setDeadline(this.#outerUs[depth], this.#outerMs[depth], this.#outerStartUs[depth]);
  }

  /** Sets the deadline in force to `us` (Infinity: none), of `ms` from `startUs`. */
  setDeadline(us: number, ms: number, startUs: number): void {
    this.deadlineMs = ms;
    this.startUs = startUs;
    if (us === this.deadlineUs) return;
    this.#write(us);
  }

  #write(us: number): void {
    this.deadlineUs = us;
    const words = this.#words;
    if (us === Infinity) {
      words[DEADLINE_WORD] = 0xffff_ffff;
      words[DEADLINE_WORD + 1] = 0xffff_ffff;
    } else {
      words[DEADLINE_WORD] = us >>> 0;
      words[DEADLINE_WORD + 1] = Math.floor(us / TWO_32);
    }
  }

  /** Why the last check tripped: 0, or a `Dead` reason. */
  tripped(): number {
    return this.#words[TRIPPED_WORD];
  }

  /** Forgets the last trip. */
  clearTripped(): void {
    this.#words[TRIPPED_WORD] = 0;
  }
}

let page: EpochPage | null = null;

/** The epoch memory of this isolate, made (and mapped) on first use. Throws ResourceError. */
export function epochPage(lib: NativeLibrary): EpochPage {
  return page ??= new EpochPage(lib);
}

/**
 * Takes a holder of the process's ticker for an engine with a tick of `tickMs` (the first
 * holder starts the thread), and makes sure this isolate has its epoch memory. Throws
 * ResourceError.
 */
export function acquireTicker(lib: NativeLibrary, tickMs: number): number {
  const holder = lib.tickerAcquire(Math.round(tickMs * 1000));
  if (holder < 0) throw tickerError(lib, holder, "starting the ticker");
  try {
    epochPage(lib);
  } catch (error) {
    lib.tickerRelease(holder);
    throw error;
  }
  return holder;
}

/** Gives back a holder taken by {@linkcode acquireTicker}; the last one stops the thread. */
export function releaseTicker(lib: NativeLibrary, holder: number): void {
  const code = lib.tickerRelease(holder);
  if (code !== 0) throw new Error(`wasmpool: releasing ticker holder ${holder} gave ${code}`);
}

/**
 * The imports of module `"\0wasmpool"` of a rewritten module: the memories wasmpool passes in,
 * in order, and with interruption `epoch`'s memory and the pad before it.
 */
export function wasmpoolImports(
  memories: readonly WebAssembly.Memory[],
  epoch: EpochPage | null,
): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (let m = 0; m < memories.length; m++) out[memoryImportName(m)] = memories[m];
  if (epoch !== null) {
    out[EPOCH_IMPORT] = epoch.memory;
    out[PAD_IMPORT] = epoch.pad;
  }
  return out;
}
