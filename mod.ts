/**
 * wasmpool: Wasmtime's pooling instance allocator for Deno and Bun. Many short-lived, isolated
 * WebAssembly instances that run on the runtime's own engine, made in microseconds from memory
 * kept between tenants, reset when disposed, and bounded by limits.
 *
 * An {@linkcode Engine} owns an allocator: pooling (slots reserved once and reused, a hard cap
 * on live instances) or on demand. A {@linkcode Module} is a module binary validated, checked
 * against the engine's limits and compiled once; {@linkcode Engine.instantiate} makes an
 * {@linkcode Instance} that runs (its exports behave like `WebAssembly.Instance#exports`), and
 * {@linkcode Engine.allocate} is the allocator alone, for embedders that run code themselves.
 *
 * @example
 * ```ts
 * import { Config, Engine, InstanceAllocationStrategy, Module } from "@wasmpool/core";
 *
 * using engine = new Engine(new Config().withAllocationStrategy(
 *   InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
 * ));
 * const module = new Module(engine, wasmBytes);
 * using instance = engine.instantiate(module, { env: { log: console.log } });
 * (instance.exports.main as () => void)();
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
  SnapshotError,
  UffdUnavailableError,
  UnsupportedFeatureError,
  WasmpoolError,
} from "./src/errors.ts";
export { Global, type GlobalOptions, type GlobalValue } from "./src/global.ts";
export {
  FunctionExport,
  type ImportedFunction,
  type Imports,
  type ImportValue,
} from "./src/imports.ts";
export { type ExportValue, InstanceHandle } from "./src/instance_handle.ts";
export { Memory, WASM_PAGE_BYTES } from "./src/memory.ts";
export { Module, type ModuleExportDescriptor, type ModuleImportDescriptor } from "./src/module.ts";
export { Reservation, ReservedMemory } from "./src/run/reservation.ts";
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
