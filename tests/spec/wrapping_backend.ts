/**
 * A backend shaped like wasmpool's running instances, built on the runtime's own
 * `WebAssembly`: every exported function is a guard function (a plain JS function that
 * calls the wasm one), every memory, table and global an object of its own with the JS API's
 * surface (`buffer` aliasing the wasm memory, `grow`; `get`/`set`/`grow`/`length`; `value`).
 * Wrappers handed back as imports are unwrapped to what they wrap, as wasmpool does with
 * its own objects, so that linking still checks types. After `dispose()` every wrapper
 * throws.
 *
 * It exists to prove the differential machinery on the shape wasmpool will have, before
 * wasmpool runs code: compared command by command with the reference, it must agree.
 *
 * @module
 */

import type { Backend, BackendInstance, Imports } from "./backend.ts";

/** Thrown by a wrapper of a disposed instance. */
export class DisposedWrapperError extends Error {
  /**
   * Names the export that was used after disposal.
   *
   * @param what The export's name.
   */
  constructor(what: string) {
    super(`${what} used after its instance was disposed`);
    this.name = "DisposedWrapperError";
  }
}

/** Options of {@linkcode wrappingBackend}. */
export interface WrappingBackendOptions {
  /** The backend's name in reports; default `"wrapping"`. */
  readonly name?: string;
}

/**
 * A backend that wraps each export of the runtime's own instances as wasmpool will.
 *
 * @param options Options; see {@linkcode WrappingBackendOptions}.
 */
export function wrappingBackend(options: WrappingBackendOptions = {}): Backend<WebAssembly.Module> {
  /** Wrapper object or function -> the JS API object it wraps. */
  const unwrapped = new WeakMap<object, unknown>();

  function unwrap(value: unknown): unknown {
    if ((typeof value === "object" && value !== null) || typeof value === "function") {
      return unwrapped.has(value) ? unwrapped.get(value) : value;
    }
    return value;
  }

  function wrap(name: string, raw: unknown, live: () => boolean): unknown {
    const check = (): void => {
      if (!live()) throw new DisposedWrapperError(name);
    };
    let wrapper: object;
    if (typeof raw === "function") {
      const fn = raw as (...args: unknown[]) => unknown;
      wrapper = function guard(...args: unknown[]): unknown {
        check();
        return fn(...args);
      };
    } else if (raw instanceof WebAssembly.Memory) {
      wrapper = {
        get buffer(): ArrayBuffer {
          check();
          return raw.buffer as ArrayBuffer;
        },
        grow(delta: number): number {
          check();
          return raw.grow(delta);
        },
      };
    } else if (raw instanceof WebAssembly.Table) {
      wrapper = {
        get length(): number {
          check();
          return raw.length;
        },
        get(index: number): unknown {
          check();
          return raw.get(index);
        },
        set(index: number, ...value: unknown[]): void {
          check();
          Reflect.apply(raw.set, raw, [index, ...value.map(unwrap)]);
        },
        grow(delta: number, ...value: unknown[]): number {
          check();
          return Reflect.apply(raw.grow, raw, [delta, ...value.map(unwrap)]) as number;
        },
      };
    } else if (raw instanceof WebAssembly.Global) {
      wrapper = {
        get value(): unknown {
          check();
          return raw.value;
        },
        set value(v: unknown) {
          check();
          raw.value = v;
        },
        valueOf(): unknown {
          check();
          return raw.value;
        },
      };
    } else {
      return raw; // a tag, or something newer: passed through.
    }
    unwrapped.set(wrapper, raw);
    return wrapper;
  }

  return {
    name: options.name ?? "wrapping",
    compile: (bytes) => new WebAssembly.Module(bytes),
    instantiate(module, imports: Imports): BackendInstance {
      const raw: Imports = {};
      for (const [moduleName, fields] of Object.entries(imports)) {
        raw[moduleName] = {};
        for (const [field, value] of Object.entries(fields)) raw[moduleName][field] = unwrap(value);
      }
      const instance = new WebAssembly.Instance(module, raw as WebAssembly.Imports);
      let disposed = false;
      const live = (): boolean => !disposed;
      const exports: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(instance.exports)) {
        exports[name] = wrap(name, value, live);
      }
      return {
        exports: Object.freeze(exports),
        dispose(): void {
          disposed = true;
        },
      };
    },
  };
}
