/**
 * The registry from public Engine objects to their internals, and the scratch area's upkeep.
 *
 * @module
 */

import { DisposedError, ResourceError, WasmpoolError } from "./errors.ts";
import { detachBuffer, type EngineState, type Scratch } from "./internal.ts";
import type { NativeLibrary } from "./ffi/symbols.ts";

const states = new WeakMap<object, EngineState>();

/** @internal Registers the internals of `engine`. */
export function registerEngine(engine: object, state: EngineState): void {
  states.set(engine, state);
}

/** @internal The internals of `engine`; throws DisposedError once it is closed. */
export function engineState(engine: object): EngineState {
  const state = states.get(engine);
  if (state === undefined) throw new WasmpoolError("not a wasmpool Engine");
  if (state.closed) throw new DisposedError("the engine was used after close()");
  return state;
}

/** The smallest scratch area: room for the detail words and a few slots. */
export const MIN_SCRATCH_BYTES = 4096;

/** @internal A native scratch area of at least `bytes`. */
export function createScratch(lib: NativeLibrary, bytes: number): Scratch {
  const size = Math.max(MIN_SCRATCH_BYTES, bytes);
  if (size > 0xffff_ffff) {
    throw new ResourceError(`a scratch area of ${size} bytes exceeds the limit of 4 GiB`);
  }
  const pointer = lib.scratchCreate(size);
  if (pointer === null) throw new ResourceError(`could not allocate ${size} bytes of scratch`);
  const words = new Uint32Array(lib.arrayBuffer(lib.address(pointer), size));
  return { pointer, bytes: size, words };
}

/** @internal Replaces the engine's scratch area when a module needs a larger one. */
export function ensureScratch(state: EngineState, bytes: number): void {
  if (bytes <= state.scratch.bytes) return;
  const old = state.scratch;
  state.scratch = createScratch(state.lib, Math.max(bytes, 2 * old.bytes));
  detachBuffer(old.words.buffer);
  state.lib.scratchDestroy(old.pointer, old.bytes);
}
