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
const WASM_PAGE_BYTES = 65536;

/** Deadlines of this many ticks or more are counted from the epoch (see `EpochPage#enter`). */
export const COARSE_TICKS = 100;
/** The index of the deadline's low word among the epoch memory's words (the high one follows). */
export const DEADLINE_WORD = DEADLINE_OFFSET / 4;
/** The index of the tripped word. */
export const TRIPPED_WORD = TRIPPED_OFFSET / 4;
/** Both words of the deadline when there is none: the largest u64. */
const NONE = 0xffff_ffff;

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
  /**
   * @internal The memory's first words: the epoch's low and high words at 0 and 1, the
   * deadline's at {@linkcode DEADLINE_WORD}, the tripped word at {@linkcode TRIPPED_WORD}.
   * The deadline is kept only here, as two words, so that a call sets and restores it with
   * integer loads and stores (no clock read, no conversion of a 64-bit number).
   */
  readonly words: Uint32Array;
  readonly #lib: NativeLibrary;
  /** The deadline in force's length in ms, from the start of the call that set it. */
  deadlineMs = 0;
  /** The µs from the start of the call that set the deadline in force to the deadline. */
  spanUs = 0;
  /** Calls into instances (through their wrappers) in progress on this thread. */
  depth = 0;
  // The deadline in force when each call made through `enter` started: put back after it.
  readonly #outerLo: number[] = [];
  readonly #outerHi: number[] = [];
  readonly #outerMs: number[] = [];
  readonly #outerSpanUs: number[] = [];

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
    // A view of fixed length: one that tracks the length of a growable shared buffer costs
    // JavaScriptCore 3.4 times as much per access (Bun 1.4.5), and the memory never grows.
    this.words = new Uint32Array(this.memory.buffer, 0, (EPOCH_PAGES * WASM_PAGE_BYTES) / 4);
    this.words[DEADLINE_WORD] = NONE;
    this.words[DEADLINE_WORD + 1] = NONE;
  }

  /** The deadline in force, in µs (Infinity: none). */
  get deadlineUs(): number {
    const words = this.words;
    const hi = words[DEADLINE_WORD + 1];
    const lo = words[DEADLINE_WORD];
    return hi === NONE && lo === NONE ? Infinity : hi * TWO_32 + lo;
  }

  /** When the call that set the deadline in force started, in µs. */
  get startUs(): number {
    return this.deadlineUs - this.spanUs;
  }

  /** The time now, in µs of CLOCK_MONOTONIC. */
  now(): number {
    const epoch = this.epoch();
    // The clock's low word is ahead of the epoch's by less than 2^32 µs: add the difference.
    return epoch + ((this.#lib.tickerNowLow() - epoch) >>> 0);
  }

  /** The epoch as the guests see it now, in µs. */
  epoch(): number {
    const words = this.words;
    let hi = words[1];
    let lo = words[0];
    while (words[1] !== hi) {
      hi = words[1];
      lo = words[0];
    }
    return hi * TWO_32 + lo;
  }

  /**
   * Makes the deadline in force `lengthUs` (a whole number) from now, unless the one in force is
   * earlier; `ms` is its length as given, for messages. A `coarse` deadline
   * ({@linkcode COARSE_TICKS} ticks of `tickUs` or more) is counted from the epoch plus a tick,
   * which is never before now, instead of from the clock (a read of the clock costs 50 ns
   * here): at most one tick more, one percent of it.
   */
  tighten(lengthUs: number, ms: number, coarse: boolean, tickUs: number): void {
    const words = this.words;
    let hi: number;
    let lo: number;
    if (coarse) {
      hi = words[1];
      lo = words[0];
      while (words[1] !== hi) {
        hi = words[1];
        lo = words[0];
      }
      lo += tickUs + lengthUs;
    } else {
      const now = this.now();
      hi = Math.floor(now / TWO_32);
      lo = now - hi * TWO_32 + lengthUs;
    }
    if (lo >= TWO_32) {
      const carry = Math.floor(lo / TWO_32);
      hi += carry;
      lo -= carry * TWO_32;
    }
    const inForceHi = words[DEADLINE_WORD + 1];
    if (hi > inForceHi || (hi === inForceHi && lo >= words[DEADLINE_WORD])) return;
    words[DEADLINE_WORD] = lo;
    words[DEADLINE_WORD + 1] = hi;
    this.deadlineMs = ms;
    this.spanUs = lengthUs;
  }

  /**
   * A call starts, with a deadline of `ms` (null: none) from now: the deadline in force becomes
   * the earlier of the one in force and that one (see {@linkcode EpochPage.tighten}). Pair with
   * {@linkcode EpochPage.leave}. The wrappers of exports do the same in their own code
   * (calls.ts).
   */
  enter(ms: number | null, tickUs: number): void {
    const depth = this.depth;
    const words = this.words;
    this.#outerLo[depth] = words[DEADLINE_WORD];
    this.#outerHi[depth] = words[DEADLINE_WORD + 1];
    this.#outerMs[depth] = this.deadlineMs;
    this.#outerSpanUs[depth] = this.spanUs;
    if (depth === 0) words[TRIPPED_WORD] = 0;
    if (ms !== null) {
      this.tighten(Math.ceil(ms * 1000), ms, ms * 1000 >= COARSE_TICKS * tickUs, tickUs);
    }
    this.depth = depth + 1;
  }

  /** The call started last ends, however: the deadline in force before it is put back. */
  leave(): void {
    const depth = --this.depth;
    this.restore(
      this.#outerLo[depth],
      this.#outerHi[depth],
      this.#outerMs[depth],
      this.#outerSpanUs[depth],
    );
  }

  /** Puts back a deadline in force: its words `lo` and `hi`, its `ms` and `spanUs`. */
  restore(lo: number, hi: number, ms: number, spanUs: number): void {
    const words = this.words;
    words[DEADLINE_WORD] = lo;
    words[DEADLINE_WORD + 1] = hi;
    this.deadlineMs = ms;
    this.spanUs = spanUs;
  }

  /** Why the last check tripped: 0, or a `Dead` reason. */
  tripped(): number {
    return this.words[TRIPPED_WORD];
  }

  /** Forgets the last trip. */
  clearTripped(): void {
    this.words[TRIPPED_WORD] = 0;
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
