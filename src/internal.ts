/**
 * State shared between the public classes but not part of the public API. Each public object
 * keeps its state here, keyed by the object, so nothing internal shows on its surface.
 *
 * @module
 */

import type { PoolingSettings } from "./config.ts";
import { DisposedError } from "./errors.ts";
import type { NativeLibrary, NativePointer } from "./ffi/symbols.ts";
import type { TranslationLimits } from "./module/translate.ts";
import type { RunEngine } from "./run/run_engine.ts";
import type { RunChecks } from "./run/interrupt.ts";
import { Code } from "./native_errors.ts";

/** The scratch area of one engine: native memory with a view for reading and writing. */
export interface Scratch {
  /** The native allocation. */
  readonly pointer: NativePointer;
  /** Its size. */
  readonly bytes: number;
  /** A view of it in 32-bit words. */
  readonly words: Uint32Array<ArrayBuffer>;
}

/** An engine's internals. */
export interface EngineState {
  /** The native library. */
  readonly lib: NativeLibrary;
  /** The native engine. */
  readonly pointer: NativePointer;
  /** `"on-demand"` or `"pooling"`. */
  readonly kind: "on-demand" | "pooling";
  /** The pooling settings, or null. */
  readonly pooling: PoolingSettings | null;
  /** The largest memory and table sizes. */
  readonly limits: TranslationLimits;
  /** The scratch area; replaced by a larger one when a module needs it. */
  scratch: Scratch;
  /** Live native instances by id. */
  readonly slots: (Slot | undefined)[];
  /** Native modules translated through this engine object and not yet freed. */
  readonly modules: Set<NativePointer>;
  /** Whether `close()` was called. */
  closed: boolean;
  /** Whether collected instances give their slot back (Config#withInstanceFinalization). */
  readonly finalization: boolean;
  /** The running layer (host memories, running instances), made on first instantiate. */
  run: RunEngine | null;
  /** The checks compiled into this engine's modules (interruption, fuel). */
  readonly checks: RunChecks;
  /** The engine's tick in milliseconds, with interruption; else null. */
  readonly tickMs: number | null;
  /** The engine's holder of the process's epoch ticker, or -1 (interruption off, or closed). */
  tickerHolder: number;
}

const NO_SLOTS: readonly Slot[] = Object.freeze([]);

/** The native side of one instance: alive while its instance or an importer holds it. */
export class Slot {
  /** The engine. */
  readonly engine: EngineState;
  /** The native instance id. */
  readonly id: number;
  /** Holders: the instance itself, and every instance importing one of its memories/tables. */
  refs = 1;
  /** Views handed out over this slot's memories and tables, detached on release. */
  owned: View[] | null = null;
  /** Other instances' slots this slot's instance imports from, released with it. */
  held: readonly Slot[] = NO_SLOTS;
  /** Whether the instance has let go (dispose or finalizer): it does so once. */
  released = false;
  /** Whether the instance's lease is registered with the finalizer. */
  finalizing = false;
  /** Its place among the slots waiting for the finalizer's registration, or -1. */
  pending = -1;
  /** Whether the native dispose reported the slot quarantined (its reset failed). */
  quarantined = false;

  /** A slot for native instance `id`. */
  constructor(engine: EngineState, id: number) {
    this.engine = engine;
    this.id = id;
  }

  /** Whether the native instance is still allocated. */
  get alive(): boolean {
    return this.refs > 0 && !this.engine.closed;
  }

  /** Throws DisposedError unless alive. */
  check(what: string): void {
    if (!this.alive) throw new DisposedError(`${what} was used after its instance was disposed`);
  }

  /** A new view over this slot's native bytes, detached when the slot is released. */
  newView(): View {
    const view = new View();
    (this.owned ??= []).push(view);
    return view;
  }

  /** An ArrayBuffer over `byteLength` bytes of this slot at `address` (no copy). */
  arrayBuffer(address: number, byteLength: number): ArrayBuffer {
    return byteLength === 0 ? new ArrayBuffer(0) : this.engine.lib.arrayBuffer(address, byteLength);
  }

  /** Detaches every view handed out over this slot. */
  detachViews(): void {
    const owned = this.owned;
    if (owned === null) return;
    for (let i = 0; i < owned.length; i++) owned[i].detach();
  }

  /**
   * The instance lets go of its slot and of the slots it imports from; only the first call
   * counts (dispose and the finalizer may both come).
   */
  releaseInstance(): void {
    if (this.released) return;
    this.released = true;
    this.release();
    const held = this.held;
    for (let h = 0; h < held.length; h++) held[h].release();
  }

  /** Drops one holder; the last one gives the slot back to the pool. */
  release(): void {
    if (this.refs === 0) return;
    this.refs -= 1;
    if (this.refs > 0) return;
    this.detachViews();
    if (this.engine.closed) return;
    this.engine.slots[this.id] = undefined;
    const code = this.engine.lib.instanceDispose(this.engine.pointer, this.id);
    if (code === Code.quarantined) this.quarantined = true;
    else if (code !== 0) {
      throw new Error(`wasmpool: native dispose of instance ${this.id} gave ${code}`);
    }
  }
}

/**
 * The native view of one memory or table. Kept apart from the Memory/Table object so that a
 * slot can detach it without holding the Memory/Table (and so their instance) alive.
 */
export class View {
  /** The ArrayBuffer over the native bytes, made on first use. */
  buffer: ArrayBuffer | null = null;
  /** A Uint32Array over `buffer`, for tables. */
  words: Uint32Array | null = null;

  /** Detaches the buffer; the next use makes a new one. */
  detach(): void {
    detachBuffer(this.buffer);
    this.buffer = null;
    this.words = null;
  }
}

/** Where a memory or table lives natively: its instance's slot and its index there. */
export interface NativeRef {
  /** The slot of the instance that defined it. */
  readonly slot: Slot;
  /** Its index among that instance's defined memories or tables. */
  readonly index: number;
}

/** Detaches `buffer` (views go to length 0) without freeing or aliasing the native memory. */
export function detachBuffer(buffer: ArrayBuffer | null): void {
  if (buffer === null || buffer.detached) return;
  // transfer(0) detaches and returns a new empty buffer; plain transfer() would alias the slot.
  buffer.transfer(0);
}

/** The address in a scratch u64 slot, as a number (addresses fit in 2^53). */
export function readAddress(words: Uint32Array, slot: number): number {
  const at = 8 + 2 * slot;
  return words[at + 1] * 2 ** 32 + words[at];
}
