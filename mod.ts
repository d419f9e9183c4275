/**
 * wasmpool: a pooling instance allocator for WebAssembly-style instances, for Deno and Bun.
 *
 * An {@linkcode Engine} owns an allocator: on demand (a mapping per memory, made and unmapped
 * per instance) or pooling (address space for every instance reserved once, slots reused and
 * reset). A {@linkcode Module} is a module binary translated and validated for an engine;
 * {@linkcode Engine.allocate} allocates and initializes its memories, tables and globals.
 * Wasmpool does not run code: what runs in the memories is the caller's business.
 *
 * @example
 * ```ts
 * import { Config, Engine, InstanceAllocationStrategy, Module } from "@wasmpool/core";
 *
 * using engine = new Engine(new Config().withAllocationStrategy(
 *   InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
 * ));
 * const module = new Module(engine, wasmBytes);
 * using instance = engine.allocate(module);
 * new Uint8Array(instance.memories[0].buffer)[0] = 1;
 * ```
 *
 * @module
 */

export {
  Config,
  DEFAULT_INSTANCE_LIMITS,
  DEFAULT_MODULE_LIMITS,
  InstanceAllocationStrategy,
  type InstanceLimits,
  type InterruptionOptions,
  type InterruptionSettings,
  type ModuleLimits,
  type PoolingAllocationStrategy,
  type PoolingOptions,
  type PoolingSettings,
} from "./src/config.ts";
export {
  Engine,
  type EngineHandle,
  type EngineStats,
  ON_DEMAND_TABLE_ELEMENTS,
} from "./src/engine.ts";
export {
  ArgumentError,
  DeadlineExceededError,
  DisposedError,
  FuelExhaustedError,
  InstantiationError,
  LibraryError,
  type LibraryFailure,
  type LimitDetails,
  LimitError,
  LinkError,
  MalformedModuleError,
  OutOfBoundsError,
  PoolExhaustedError,
  ResourceError,
  UffdUnavailableError,
  UnsupportedFeatureError,
  WasmpoolError,
} from "./src/errors.ts";
export { Global, type GlobalValue } from "./src/global.ts";
export {
  FunctionExport,
  type ImportedFunction,
  type Imports,
  type ImportValue,
} from "./src/imports.ts";
export { type ExportValue, InstanceHandle } from "./src/instance_handle.ts";
export { Memory, WASM_PAGE_BYTES } from "./src/memory.ts";
export { Module, type ModuleExportDescriptor, type ModuleImportDescriptor } from "./src/module.ts";
export type {
  ConstExpr,
  ExternKind,
  FuncType,
  GlobalType,
  ImportDesc,
  MemoryType,
  TableType,
  ValueType,
} from "./src/module/types.ts";
export { Table } from "./src/table.ts";
export {
  Instance,
  type InstanceExports,
  type InstanceImports,
  type InstantiateOptions,
} from "./src/run/instance.ts";
export { GuardedGlobal, GuardedMemory, GuardedTable } from "./src/run/exports.ts";
