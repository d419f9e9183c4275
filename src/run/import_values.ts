/**
 * Reading a user's import object as `new WebAssembly.Instance` does: each declared import, in
 * order, looked up once by module name, then field name. A missing import object or namespace
 * is a LinkError naming it.
 *
 * @module
 */

import { LinkError } from "../errors.ts";
import type { ItemPlan } from "./plan.ts";

/** What `Engine#instantiate` takes as imports (see `InstanceImports`). */
export type ImportObject = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** The value of each declared import, in order (functions included); none for no imports. */
export function importValues(
  declared: readonly ItemPlan[],
  imports: ImportObject | undefined,
): unknown[] {
  const values: unknown[] = new Array(declared.length);
  if (declared.length === 0) return values;
  if (typeof imports !== "object" || imports === null) {
    throw new LinkError(
      `the module has ${declared.length} imports, and no import object was given`,
    );
  }
  for (let i = 0; i < declared.length; i++) {
    const d = declared[i];
    const namespace = imports[d.module];
    if ((typeof namespace !== "object" && typeof namespace !== "function") || namespace === null) {
      throw new LinkError(`import module ${JSON.stringify(d.module)} is not an object`);
    }
    values[i] = (namespace as Record<string, unknown>)[d.name];
  }
  return values;
}
