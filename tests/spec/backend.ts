/**
 * A backend is what the spec harness runs modules through: something that compiles a binary
 * and instantiates it with imports, giving exports that behave like
 * `WebAssembly.Instance#exports`. The runtime's own `WebAssembly` is the reference
 * ({@linkcode referenceBackend}); wasmpool's engines plug in as candidates.
 *
 * The harness never relies on the exports being the JS API's own classes: it calls exported
 * functions, reads `value` of globals, and hands a backend's exports back to that same
 * backend as imports when a later module imports a registered one. So a backend whose
 * memories are wrapper objects with `buffer` and `grow`, whose tables have
 * `get`/`set`/`grow`/`length` and whose globals have `value` fits as it is.
 *
 * @example Plugging in a wasmpool engine (sketch)
 * ```ts ignore
 * const backend: Backend<Module> = {
 *   name: "wasmpool pooling",
 *   compile: (bytes) => new Module(engine, bytes),
 *   instantiate: (module, imports) => engine.instantiate(module, imports),
 *   errorClass: (e) => e instanceof MalformedModuleError ? "CompileError" : errorClassOf(e),
 *   close: () => engine.close(),
 * };
 * ```
 *
 * @module
 */

/** Imports, as `new WebAssembly.Instance` takes them: module name, then field name. */
export type Imports = Record<string, Record<string, unknown>>;

/** An instance made by a backend. */
export interface BackendInstance {
  /**
   * The instance's exports, like `WebAssembly.Instance#exports`: functions to call,
   * memories, tables and globals (objects with the same surface; not necessarily the JS
   * API's classes).
   */
  readonly exports: Readonly<Record<string, unknown>>;
  /** Releases the instance. The harness calls it once, when the file is done. */
  dispose?(): void;
}

/**
 * Something that compiles and instantiates WebAssembly modules.
 *
 * @typeParam C What `compile` returns and `instantiate` takes.
 */
export interface Backend<C = unknown> {
  /** A name for reports. */
  readonly name: string;
  /**
   * Compiles (and validates) a binary. Throws for a malformed or invalid one.
   *
   * @param bytes The module binary.
   */
  compile(bytes: Uint8Array<ArrayBuffer>): C | Promise<C>;
  /**
   * Instantiates a compiled module: links the imports, runs the segments and the start
   * function. Throws a link error for imports that do not fit and a runtime error for a trap.
   *
   * @param compiled What `compile` returned.
   * @param imports The imports.
   */
  instantiate(compiled: C, imports: Imports): BackendInstance | Promise<BackendInstance>;
  /**
   * The JS API class an error stands for (`CompileError`, `LinkError`, `RuntimeError`,
   * `RangeError`, `TypeError`, ...), so that a backend whose own errors wrap the runtime's
   * compares as the runtime would. Defaults to {@linkcode errorClassOf}.
   *
   * @param error What the backend threw.
   */
  errorClass?(error: unknown): string;
  /** Releases the backend, after every instance is disposed. */
  close?(): void | Promise<void>;
}

/**
 * The class name of a thrown value: an error's `name` (`RuntimeError`, `CompileError`, ...),
 * or the value's type for something that is not an error.
 *
 * @param error What was thrown.
 */
export function errorClassOf(error: unknown): string {
  if (error instanceof Error) return error.name;
  return `non-error ${typeof error}`;
}

/**
 * The runtime's own `WebAssembly`, synchronously: `new WebAssembly.Module` and
 * `new WebAssembly.Instance`. The reference every candidate is compared with.
 */
export function referenceBackend(): Backend<WebAssembly.Module> {
  return {
    name: "WebAssembly",
    compile: (bytes) => new WebAssembly.Module(bytes),
    instantiate: (module, imports) => ({
      exports: new WebAssembly.Instance(module, imports as WebAssembly.Imports).exports,
    }),
  };
}

/**
 * The runtime's own `WebAssembly` through its asynchronous entry points,
 * `WebAssembly.compile` and `WebAssembly.instantiate`: a second, independent path through
 * the engine.
 */
export function asyncReferenceBackend(): Backend<WebAssembly.Module> {
  return {
    name: "WebAssembly (async)",
    compile: (bytes) => WebAssembly.compile(bytes),
    instantiate: async (module, imports) => ({
      exports: (await WebAssembly.instantiate(module, imports as WebAssembly.Imports)).exports,
    }),
  };
}
