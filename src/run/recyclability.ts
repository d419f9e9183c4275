/**
 * Whether a module's instances can be recycled: reset in place between tenants instead of
 * made anew (see recycle.ts). Decided once per module, from what it declares and what its code
 * does; each reason it cannot is named (`Engine#stats()` counts the instantiations it cost).
 *
 * An instance can be returned to the state of a new one when everything a tenant can change
 * can be put back: memories (from the module's images, natively), mutable globals (to their
 * initializers), tables (refilled, element segments applied again), and the start function run
 * again. Not when:
 *
 * - its memories do not start from images (data segments at offsets only instantiation knows);
 * - it imports a memory or a table (another instance's state), or a mutable global; except the
 *   memories of a reservation's variant (`Engine#reserve`): pooled, reset like defined ones;
 * - its code drops data or element segments (`data.drop`, `elem.drop`): a reset cannot bring
 *   a dropped segment back;
 * - a function reference could reach a tenant raw and outlive it: a funcref in a parameter of
 *   an imported function or in an exported function's signature, or an exported funcref table
 *   or global. (A tenant's own exports are wrapped; a reference from inside the instance would
 *   reach the next tenant's state.)
 *
 * A tenant that grew a memory or a table is not recycled either: that is decided at the end of
 * each tenancy.
 *
 * @module
 */

import type { FuncType, ParsedModule } from "../module/types.ts";
import type { CodeFacts } from "./instrument.ts";

/** Why instances of a module cannot be recycled, from what it declares; null if they can. */
export function declaredObstacle(
  parsed: ParsedModule,
  pooled: boolean,
  imaged: boolean,
  reservedMemories = 0,
): string | null {
  if (!pooled) return "the engine allocates on demand";
  const activeData = parsed.data.some((d) => d.mode === "active");
  if (activeData && !imaged) {
    return "its data segments are not all in memory images (offsets only instantiation knows)";
  }
  let memories = 0;
  for (const i of parsed.imports) {
    // A reservation's memories (the first ones) are pooled: reset to their images.
    if (i.desc.kind === "memory" && memories++ < reservedMemories) continue;
    if (i.desc.kind === "memory" || i.desc.kind === "table") {
      return `it imports a ${i.desc.kind} (${i.module}.${i.name})`;
    }
    if (i.desc.kind === "global" && i.desc.type.mutable) {
      return `it imports a mutable global (${i.module}.${i.name})`;
    }
    if (i.desc.kind === "function" && parsed.types[i.desc.type].params.includes("funcref")) {
      return `its import ${i.module}.${i.name} takes a function reference`;
    }
  }
  const importedFunctionTypes = parsed.imports.flatMap((i) =>
    i.desc.kind === "function" ? [i.desc.type] : []
  );
  const typeOf = (f: number): FuncType =>
    parsed.types[
      f < importedFunctionTypes.length
        ? importedFunctionTypes[f]
        : parsed.functions[f - importedFunctionTypes.length]
    ];
  const tableTypes = [
    ...parsed.imports.flatMap((i) => i.desc.kind === "table" ? [i.desc.type.element] : []),
    ...parsed.tables.map((t) => t.element),
  ];
  const globalTypes = [
    ...parsed.imports.flatMap((i) => i.desc.kind === "global" ? [i.desc.type.type] : []),
    ...parsed.globals.map((g) => g.type.type),
  ];
  for (const e of parsed.exports) {
    const funcref = e.kind === "function"
      ? [...typeOf(e.index).params, ...typeOf(e.index).results].includes("funcref")
      : e.kind === "table"
      ? tableTypes[e.index] === "funcref"
      : e.kind === "global"
      ? globalTypes[e.index] === "funcref"
      : false;
    if (funcref) return `its export ${JSON.stringify(e.name)} hands out function references`;
  }
  return null;
}

/** Why instances cannot be recycled, given what the code does; null if they can. */
export function codeObstacle(facts: CodeFacts): string | null {
  if (facts.dataDrops > 0) return "its code drops data segments (data.drop)";
  if (facts.elemDrops > 0) return "its code drops element segments (elem.drop)";
  return null;
}
