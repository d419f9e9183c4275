/**
 * `Engine#instantiate`'s choice: a tenancy of a recycled instance (lifecycle.ts) when the engine
 * pools and recycles and the module allows it, else an instance of its own (dedicated.ts),
 * counted against the pool with pooling. Either way the options are checked first.
 *
 * @module
 */

import type { EngineState } from "../internal.ts";
import { type Module, moduleState } from "../module.ts";
import { dedicated } from "./dedicated.ts";
import type { Instance, InstanceImports, InstantiateOptions } from "./instance.ts";
import { admit, callSettings, runEngine } from "./instance_setup.ts";
import { instantiateRecycled } from "./lifecycle.ts";

/** @internal Instantiates `module` to run on the runtime's engine. */
export function instantiate(
  engine: EngineState,
  module: Module,
  imports: InstanceImports | undefined,
  options: InstantiateOptions = {},
): Instance {
  const plan = moduleState(module).run;
  const settings = callSettings(plan, options);
  const run = runEngine(engine);
  if (run.pool !== null) {
    if (plan.notRecyclable === null && engine.pooling!.recycleInstances) {
      const recycled = instantiateRecycled(engine, run, module, plan, imports, settings);
      if (recycled !== null) return recycled;
      run.counters.ownInstances += 1;
    } else {
      run.counters.notRecyclable += 1;
    }
  }
  const ticket = engine.pooling === null ? -1 : admit(engine);
  return dedicated(engine, run, module, plan, imports, settings, ticket);
}
