/**
 * `Module`: a module binary translated for one engine and validated against its allocator.
 *
 * @module
 */

import type { Engine } from "./engine.ts";
import { engineState, ensureScratch } from "./engine_state.ts";
import { MalformedModuleError, ResourceError, WasmpoolError } from "./errors.ts";
import type { NativePointer } from "./ffi/symbols.ts";
import type { EngineState } from "./internal.ts";
import { parseModule } from "./module/parse.ts";
import { translate, type Translation } from "./module/translate.ts";
import type { ExternKind, ImportDesc } from "./module/types.ts";
import { checkMinimums, validateModuleLimits } from "./module/validate.ts";
import { Code, imageError } from "./native_errors.ts";
import { planRun, type RunPlan, validateForRuntime } from "./run/plan.ts";

/** One import a module declares. */
export interface ModuleImportDescriptor {
  /** The module name. */
  readonly module: string;
  /** The field name. */
  readonly name: string;
  /** What kind of item it is. */
  readonly kind: ExternKind;
  /** Its type. */
  readonly type: ImportDesc;
}

/** One export a module declares. */
export interface ModuleExportDescriptor {
  /** The export name. */
  readonly name: string;
  /** What kind of item it is. */
  readonly kind: ExternKind;
}

/** @internal What an instantiation needs of a module. */
export interface ModuleState {
  readonly engine: EngineState;
  readonly translation: Translation;
  readonly pointer: NativePointer;
  /** wasmpool's copy of the module's bytes: the translation's views point into it. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** How the module runs on this engine: its rewrite, compiled by the runtime. */
  readonly run: RunPlan;
}

// Reads a Module's private state; set in the class's static block, so that nothing of it shows
// on the public surface. A private field is read faster than a WeakMap on the hot path.
let stateOf: (module: Module) => ModuleState;

/** @internal The state of `module`. */
export function moduleState(module: Module): ModuleState {
  if (!(module instanceof Module)) throw new WasmpoolError("not a wasmpool Module");
  return stateOf(module);
}

// A module's boxed data is freed when the Module is collected (instances hold their Module).
const finalizer = new FinalizationRegistry<{ engine: EngineState; pointer: NativePointer }>(
  ({ engine, pointer }) => {
    if (engine.closed || !engine.modules.delete(pointer)) return;
    engine.lib.moduleDestroy(engine.pointer, pointer);
  },
);

/** A private copy of `bytes`, so that the caller may reuse its buffer. */
function copyBytes(bytes: unknown): Uint8Array<ArrayBuffer> {
  if (ArrayBuffer.isView(bytes)) {
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice();
  }
  if (bytes instanceof ArrayBuffer || bytes instanceof SharedArrayBuffer) {
    return new Uint8Array(bytes).slice();
  }
  throw new MalformedModuleError("module bytes must be an ArrayBuffer or a typed array", 0);
}

// Bytes wasmpool made itself from a module it validated (a snapshot's): the constructor adopts
// them without a copy and does not have the runtime validate them again (18 MiB for tiktoken's
// snapshot: a copy and a validation are a third of taking it).
let adopted: Uint8Array<ArrayBuffer> | null = null;

/** @internal `new Module(engine, bytes)` for bytes wasmpool made, valid by construction. */
export function adoptModule(engine: Engine, bytes: Uint8Array<ArrayBuffer>): Module {
  adopted = bytes;
  try {
    return new Module(engine, bytes);
  } finally {
    adopted = null;
  }
}

/**
 * A translated module: parsed, validated against the engine's limits, its initial data copied
 * once into native memory. When every data segment has a constant offset that fits its
 * memory's initial size, each memory's initial contents are built here, once, into an image
 * (a sealed memfd) that instances map copy-on-write instead of copying the segments. Allocate
 * its state with {@linkcode Engine.allocate}.
 */
export class Module {
  static {
    stateOf = (module) => module.#state;
  }

  /** The engine this module was translated for. */
  readonly engine: Engine;
  readonly #state: ModuleState;
  /** The module's imports, in order. */
  readonly imports: readonly ModuleImportDescriptor[];
  /** The module's exports, in order. */
  readonly exports: readonly ModuleExportDescriptor[];
  /**
   * Why this module's running instances cannot be recycled (reset in place between tenants),
   * or null when they can: with pooling, a disposed instance then serves the next
   * `instantiate` of the module, unless its tenant grew a memory or a table.
   */
  readonly notRecyclable: string | null;

  /**
   * Translates `bytes` for `engine`: parses it, validates it against the engine's limits,
   * boxes its data natively, and compiles it (rewritten to run on pooled memories) with the
   * runtime's own WebAssembly engine. Throws {@linkcode MalformedModuleError} (with the byte
   * offset when wasmpool's parser finds the fault) for a binary that is malformed or that the
   * runtime refuses to compile, {@linkcode UnsupportedFeatureError} for a feature wasmpool
   * cannot pool, and {@linkcode LimitError} when the module breaks one of the engine's limits.
   */
  constructor(engine: Engine, bytes: ArrayBufferLike | ArrayBufferView) {
    const state = engineState(engine);
    const adopt = adopted !== null && bytes === adopted;
    adopted = null;
    const copy = adopt ? bytes as Uint8Array<ArrayBuffer> : copyBytes(bytes);
    const parsed = parseModule(copy);
    if (state.pooling !== null) validateModuleLimits(parsed, state.pooling.moduleLimits);
    else checkMinimums(parsed, state.limits.tableElements, state.limits.memoryPages);
    const translation = translate(parsed, state.limits);
    // The runtime refuses it here or never: validated once, compiled below.
    if (!adopt) validateForRuntime(copy);
    ensureScratch(state, translation.scratchBytes);

    // [code, errno, step]: see wasmpool_module_create.
    const code = new Int32Array(4);
    const pointer = state.lib.moduleCreate(
      state.pointer,
      translation.blob,
      translation.blob.byteLength,
      code,
    );
    if (pointer === null) {
      if (code[0] === Code.imageFailed) {
        throw imageError(code[2], code[1], translation.blob.byteLength);
      }
      if (code[0] === Code.outOfMemory) {
        throw new ResourceError(
          `the native heap could not hold the module's ${translation.blob.byteLength}-byte image`,
        );
      }
      throw new WasmpoolError(`the native side refused the module image (code ${code[0]})`);
    }
    let run: RunPlan;
    try {
      // With pooling, the data segments an image holds are emptied from the rewrite.
      const imaged = state.pooling !== null && state.lib.moduleImaged(pointer) === 1;
      run = planRun(
        copy,
        translation,
        state.pooling === null ? "plain" : "pooled",
        imaged,
        state.checks,
        [],
        (state.pooling?.recycleGrownMemoryPages ?? 0) > 0,
      );
    } catch (error) {
      state.lib.moduleDestroy(state.pointer, pointer);
      throw error;
    }
    this.engine = engine;
    this.imports = Object.freeze(parsed.imports.map((i) => ({
      module: i.module,
      name: i.name,
      kind: i.desc.kind,
      type: i.desc,
    })));
    this.exports = Object.freeze(parsed.exports.map((e) => ({ name: e.name, kind: e.kind })));
    this.notRecyclable = run.notRecyclable;
    this.#state = { engine: state, translation, pointer, bytes: copy, run };
    state.modules.add(pointer);
    finalizer.register(this, { engine: state, pointer });
  }

  /**
   * The module's binary, as a new array: for a snapshot (`Instance#snapshot`), a standalone
   * module that `new WebAssembly.Module` (or `new Module`, or Wasmtime) instantiates to the
   * snapshot's state, with no start function. Write it to disk to load it in a later process.
   */
  toBytes(): Uint8Array<ArrayBuffer> {
    return this.#state.bytes.slice();
  }
}
