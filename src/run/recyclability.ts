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
 *   a dropped segment back.
 *
 * Function references that leave the instance (an exported funcref table or global, a funcref
 * in an export's signature or in a host import's parameters) are no obstacle: each is handed
 * out bound to its tenant (func_refs.ts), so none reaches the next tenant's state.
 *
 * A tenant that grew a memory or a table is not recycled either: that is decided at the end of
 * each tenancy.
 *
 * @module
 */

import type { ParsedModule } from "../module/types.ts";
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
  }
  return null;
}

/** Why instances cannot be recycled, given what the code does; null if they can. */
export function codeObstacle(facts: CodeFacts): string | null {
  if (facts.dataDrops > 0) return "its code drops data segments (data.drop)";
  if (facts.elemDrops > 0) return "its code drops element segments (elem.drop)";
  return null;
}
