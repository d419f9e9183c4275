/**
 * What both kinds of instance (dedicated.ts, lifecycle.ts) and reservations are set up with:
 * the engine's running layer, the options of `instantiate` checked against the engine, a pool
 * slot, the control of the instance's calls, and the runtime's errors translated. It keeps no
 * state of its own.
 *
 * @module
 */

import { ArgumentError, LinkError, PoolExhaustedError } from "../errors.ts";
import type { EngineState } from "../internal.ts";
import { type Module, moduleState } from "../module.ts";
import { checkOptions, type OptionNames } from "../options.ts";
import type { ParsedModule } from "../module/types.ts";
import { CallControl, UNLIMITED_FUEL } from "./calls.ts";
import { epochPage } from "./epoch.ts";
import { checkDeadline, type InstantiateOptions } from "./instance.ts";
import { anyChecks } from "./interrupt.ts";
import type { RunPlan } from "./plan.ts";
import { RunEngine } from "./run_engine.ts";
import type { RunState } from "./tenancy.ts";

/** @internal The running layer of `engine`, made on first use. */
export function runEngine(engine: EngineState): RunEngine {
  return engine.run ??= new RunEngine(engine);
}

/** @internal A function of the instance or of a tenant's imports. */
export type Fn = (...args: unknown[]) => unknown;

function checkFuel(fuel: unknown): number {
  if (fuel === undefined) return UNLIMITED_FUEL;
  if (typeof fuel !== "number" || !Number.isInteger(fuel) || fuel < 0 || fuel > UNLIMITED_FUEL) {
    throw new ArgumentError(
      `fuel must be a whole number from 0 to ${UNLIMITED_FUEL}, got ${String(fuel)}`,
    );
  }
  return fuel;
}

/** What an instance's calls start with: its deadline and fuel, checked against its engine. */
export interface CallSettings {
  readonly deadlineMs: number | null;
  readonly fuel: number;
}

/** The name of every option of `Engine#instantiate` (see `checkOptions`). */
const INSTANTIATE_OPTIONS: OptionNames<InstantiateOptions> = { deadlineMs: true, fuel: true };

/** @internal `options` checked against `plan`'s engine. */
export function callSettings(plan: RunPlan, options: InstantiateOptions): CallSettings {
  checkOptions(options, INSTANTIATE_OPTIONS, "instantiate()");
  const deadlineMs = checkDeadline(options.deadlineMs);
  if (deadlineMs !== null && !plan.checks.interruption) {
    throw new ArgumentError(
      "deadlineMs needs an engine with interruption on: new Config().withInterruption()",
    );
  }
  const fuel = checkFuel(options.fuel);
  if (options.fuel !== undefined && !plan.checks.fuel) {
    throw new ArgumentError("fuel needs an engine with fuel on: new Config().withFuel()");
  }
  return { deadlineMs, fuel };
}

/** @internal The calls into `raw` with `settings`, when its module has checks; else null. */
export function callControl(
  engine: EngineState,
  plan: RunPlan,
  raw: WebAssembly.Instance,
  state: RunState,
  settings: CallSettings,
): CallControl | null {
  if (!anyChecks(plan.checks)) return null;
  const page = plan.checks.interruption ? epochPage(engine.lib) : null;
  const control = new CallControl(raw, state, page, engine.tickMs);
  control.deadlineMs = settings.deadlineMs;
  if (plan.checks.fuel) control.giveFuel(settings.fuel);
  return control;
}

/** @internal Takes a pool slot; throws PoolExhaustedError, naming the limit, when none is free. */
export function admit(engine: EngineState): number {
  const ticket = engine.lib.instanceAdmit(engine.pointer);
  if (ticket < 0) {
    throw new PoolExhaustedError(
      `Limit of ${engine.pooling!.instanceLimits.count} concurrent instances has been reached`,
    );
  }
  return ticket;
}

/** @internal The parsed module of `module`. */
export function parsedOf(module: Module): ParsedModule {
  return moduleState(module).translation.parsed;
}

/** @internal The WasmpoolError standing for the runtime's `error`, or `error` itself. */
export function instantiationError(error: unknown): unknown {
  if (error instanceof WebAssembly.LinkError || error instanceof TypeError) {
    return new LinkError(error.message, { cause: error });
  }
  return error;
}
