/**
 * What translation reads out of a module binary: the shapes the rest of wasmpool works with.
 *
 * @module
 */

/** A WebAssembly value type. */
export type ValueType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";

/** A function signature from the type section. */
export interface FuncType {
  /** Parameter types. */
  readonly params: readonly ValueType[];
  /** Result types. */
  readonly results: readonly ValueType[];
}

/** A memory type: sizes in 64 KiB wasm pages. */
export interface MemoryType {
  /** Initial size in wasm pages. */
  readonly min: number;
  /** Maximum size in wasm pages, or `null` when the module declares none. */
  readonly max: number | null;
  /** Whether the memory is declared `shared` (threads proposal). */
  readonly shared: boolean;
}

/** A table type: sizes in elements. */
export interface TableType {
  /** The element reference type. */
  readonly element: "funcref" | "externref";
  /** Initial size in elements. */
  readonly min: number;
  /** Maximum size in elements, or `null` when the module declares none. */
  readonly max: number | null;
}

/** A global type. */
export interface GlobalType {
  /** The value type of the global. */
  readonly type: ValueType;
  /** Whether the global is mutable. */
  readonly mutable: boolean;
}

/** A constant expression, as used by global initializers and segment offsets. */
export type ConstExpr =
  | { readonly kind: "i32.const"; readonly value: number }
  | { readonly kind: "i64.const"; readonly value: bigint }
  | { readonly kind: "f32.const"; readonly value: number }
  | { readonly kind: "f64.const"; readonly value: number }
  | { readonly kind: "v128.const"; readonly bytes: Uint8Array }
  | { readonly kind: "global.get"; readonly index: number }
  | { readonly kind: "ref.null"; readonly type: "funcref" | "externref" }
  | { readonly kind: "ref.func"; readonly index: number };

/** What an import brings in. */
export type ImportDesc =
  | { readonly kind: "function"; readonly type: number }
  | { readonly kind: "table"; readonly type: TableType }
  | { readonly kind: "memory"; readonly type: MemoryType }
  | { readonly kind: "global"; readonly type: GlobalType };

/** One entry of the import section. */
export interface Import {
  /** The module name of the import. */
  readonly module: string;
  /** The field name of the import. */
  readonly name: string;
  /** What is imported. */
  readonly desc: ImportDesc;
}

/** The kinds of thing a module can import or export. */
export type ExternKind = "function" | "table" | "memory" | "global";

/** One entry of the export section. */
export interface Export {
  /** The export name (unique within the module). */
  readonly name: string;
  /** What kind of item is exported. */
  readonly kind: ExternKind;
  /** The index in the module's index space of that kind (imports first). */
  readonly index: number;
}

/** A global defined by the module. */
export interface GlobalDef {
  /** The global's type. */
  readonly type: GlobalType;
  /** Its initializer. */
  readonly init: ConstExpr;
}

/** A data segment. `data` is a view into the bytes handed to the parser (not a copy). */
export interface DataSegment {
  /** Active segments are applied at instantiation; passive ones are not. */
  readonly mode: "active" | "passive";
  /** Memory index (imports first); 0 for passive segments. */
  readonly memory: number;
  /** Offset expression of an active segment; `null` for passive segments. */
  readonly offset: ConstExpr | null;
  /** The segment's bytes. */
  readonly data: Uint8Array;
}

/** An element segment: function indices, `null` for a null reference. */
export interface ElementSegment {
  /** Active segments are applied at instantiation; the others are not. */
  readonly mode: "active" | "passive" | "declarative";
  /** Table index (imports first); 0 unless active. */
  readonly table: number;
  /** Offset expression of an active segment; `null` otherwise. */
  readonly offset: ConstExpr | null;
  /** The element reference type. */
  readonly type: "funcref" | "externref";
  /** Function indices (imports first), or `null` for `ref.null`. */
  readonly elements: readonly (number | null)[];
}

/** Where a code section's contents lie in the module binary: `[start, end)`, after its id and size. */
export interface CodeSectionExtent {
  /** The offset of the section's first content byte (its function body count). */
  readonly start: number;
  /** The offset one past the section's last byte. */
  readonly end: number;
}

/** Everything translation needs from a module binary. Index spaces count imports first. */
export interface ParsedModule {
  /** The type section. */
  readonly types: readonly FuncType[];
  /** The import section, in order. */
  readonly imports: readonly Import[];
  /** Type index of each function the module defines (not imported ones). */
  readonly functions: readonly number[];
  /** Tables the module defines. */
  readonly tables: readonly TableType[];
  /** The initializer of each defined table; `null` for the default (`ref.null`). */
  readonly tableInits: readonly (ConstExpr | null)[];
  /** Memories the module defines. */
  readonly memories: readonly MemoryType[];
  /** Globals the module defines. */
  readonly globals: readonly GlobalDef[];
  /** The export section. */
  readonly exports: readonly Export[];
  /** The start function index, or `null`. */
  readonly start: number | null;
  /** Element segments, in order. */
  readonly elements: readonly ElementSegment[];
  /** Data segments, in order. */
  readonly data: readonly DataSegment[];
  /** The data count section's value, or `null` when absent. */
  readonly dataCount: number | null;
  /**
   * Where the code section's contents lie, or `null` when the module has none; the function
   * bodies in it are listed and decoded by `code.ts`.
   */
  readonly code: CodeSectionExtent | null;
}
