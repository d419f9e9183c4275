/**
 * The command list of one spec test file, as `wast2json` (wabt) and `wasm-tools
 * json-from-wast` write it, read into typed commands.
 *
 * Both converters write `{ source_filename, commands: [...] }` with the same command and value
 * shapes; they differ in small ways that {@linkcode parseScript} evens out (wasm-tools writes
 * `module_type` on every module, `module_definition` for `(module definition ...)`, and no result
 * types on actions). A command of a kind this file does not know is kept as
 * {@linkcode UnknownCommand}, so that the runner reports it as a failure instead of dropping it.
 *
 * @module
 */

/** A value in a command: an argument, or an expected result (which may be a pattern). */
export interface WastValue {
  /** `i32`, `i64`, `f32`, `f64`, `v128`, `funcref`, `externref`, ... or `either`. */
  readonly type: string;
  /**
   * The value: an unsigned decimal of the bits for numbers, `nan:canonical` or
   * `nan:arithmetic` for float patterns, lane strings for `v128`, `null` or a host index
   * for references. Absent for a reference pattern that matches any non-null reference.
   */
  readonly value?: string | readonly string[];
  /** The lane type of a `v128`: `i8`, `i16`, `i32`, `i64`, `f32` or `f64`. */
  readonly laneType?: string;
  /** The alternatives of an `either` pattern. */
  readonly values?: readonly WastValue[];
}

/** `(invoke $module "field" args...)`. */
export interface InvokeAction {
  /** The kind of action. */
  readonly type: "invoke";
  /** The module name (`$M`) the action targets; the current module when absent. */
  readonly module?: string;
  /** The export to call. */
  readonly field: string;
  /** The arguments. */
  readonly args: readonly WastValue[];
}

/** `(get $module "field")`: reads an exported global. */
export interface GetAction {
  /** The kind of action. */
  readonly type: "get";
  /** The module name the action targets; the current module when absent. */
  readonly module?: string;
  /** The exported global to read. */
  readonly field: string;
}

/** An action: a call or a global read. */
export type Action = InvokeAction | GetAction;

/** Fields every command has. */
export interface CommandBase {
  /** The line of the command in its `.wast` file: with the file, the command's name. */
  readonly line: number;
}

/** `(module ...)`: compile and instantiate (or only compile, for a definition). */
export interface ModuleCommand extends CommandBase {
  /** The kind of command. */
  readonly type: "module";
  /** The `$name` of the module, when it has one. */
  readonly name?: string;
  /** The `.wasm` file the converter wrote. */
  readonly filename: string;
  /** `(module definition ...)`: compiled, never instantiated. */
  readonly definition: boolean;
}

/** `(register "as" $module)`: makes a module's exports importable as `as`. */
export interface RegisterCommand extends CommandBase {
  /** The kind of command. */
  readonly type: "register";
  /** The import module name the exports are registered under. */
  readonly as: string;
  /** The module to register; the current module when absent. */
  readonly name?: string;
}

/** A bare action: it must not trap. */
export interface ActionCommand extends CommandBase {
  /** The kind of command. */
  readonly type: "action";
  /** What to do. */
  readonly action: Action;
  /** The result types, when the converter wrote them. */
  readonly expected?: readonly WastValue[];
}

/** `(assert_return action results...)`. */
export interface AssertReturnCommand extends CommandBase {
  /** The kind of command. */
  readonly type: "assert_return";
  /** What to do. */
  readonly action: Action;
  /** The expected results (values or patterns). */
  readonly expected: readonly WastValue[];
}

/** `(assert_trap action "text")` and `(assert_exhaustion action "text")`. */
export interface AssertActionFailsCommand extends CommandBase {
  /** The kind of command. */
  readonly type: "assert_trap" | "assert_exhaustion";
  /** What to do. */
  readonly action: Action;
  /** The reference interpreter's message (not compared: engines word traps their own way). */
  readonly text: string;
  /** The result types, when the converter wrote them. */
  readonly expected?: readonly WastValue[];
}

/** Assertions about a module that must fail to compile, link or instantiate. */
export interface AssertModuleCommand extends CommandBase {
  /** The kind of command. */
  readonly type:
    | "assert_invalid"
    | "assert_malformed"
    | "assert_unlinkable"
    | "assert_uninstantiable";
  /** The `.wasm` (binary) or `.wat` (text) file the converter wrote. */
  readonly filename: string;
  /** `binary`, or `text` for a `(module quote ...)` that only the text format can express. */
  readonly moduleType: "binary" | "text";
  /** The reference interpreter's message. */
  readonly text: string;
}

/** A command kind this harness does not know: reported as a failure, never dropped. */
export interface UnknownCommand extends CommandBase {
  /** The converter's name for the command. */
  readonly type: "unknown";
  /** The converter's `type` field. */
  readonly kind: string;
}

/** One command of a spec test file. */
export type Command =
  | ModuleCommand
  | RegisterCommand
  | ActionCommand
  | AssertReturnCommand
  | AssertActionFailsCommand
  | AssertModuleCommand
  | UnknownCommand;

/** A spec test file read into commands. */
export interface Script {
  /** The file's name without `.wast` (`memory_copy`). */
  readonly name: string;
  /** The commands in file order. */
  readonly commands: readonly Command[];
}

/** A spec test file with everything the runner needs to run it. */
export interface SpecFile extends Script {
  /** The binary modules the commands name, by file name. */
  readonly modules: ReadonlyMap<string, Uint8Array<ArrayBuffer>>;
  /**
   * The text modules (`.wat`) that the conversion step checked are refused by the text
   * compiler (`wat2wasm`): text-format assertions, which no binary engine sees.
   */
  readonly textRejected: ReadonlySet<string>;
}

type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };
type JsonObject = { readonly [key: string]: Json };

function object(value: Json | undefined, where: string): JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${where}: expected an object, got ${JSON.stringify(value)}`);
  }
  return value as JsonObject;
}

function string(value: Json | undefined, where: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`${where}: expected a string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalString(value: Json | undefined, where: string): string | undefined {
  return value === undefined ? undefined : string(value, where);
}

function parseValue(json: Json, where: string): WastValue {
  const o = object(json, where);
  const type = string(o.type, `${where}.type`);
  if (type === "either") {
    const values = o.values;
    if (!Array.isArray(values)) throw new TypeError(`${where}: either without values`);
    return { type, values: values.map((v, i) => parseValue(v, `${where}.values[${i}]`)) };
  }
  const raw = o.value;
  let value: string | readonly string[] | undefined;
  if (Array.isArray(raw)) value = raw.map((v, i) => string(v, `${where}.value[${i}]`));
  else value = optionalString(raw as Json | undefined, `${where}.value`);
  const laneType = optionalString(o.lane_type, `${where}.lane_type`);
  return { type, value, ...(laneType === undefined ? {} : { laneType }) };
}

function parseValues(json: Json | undefined, where: string): WastValue[] | undefined {
  if (json === undefined) return undefined;
  if (!Array.isArray(json)) throw new TypeError(`${where}: expected an array`);
  return json.map((v, i) => parseValue(v, `${where}[${i}]`));
}

function parseAction(json: Json | undefined, where: string): Action {
  const o = object(json, where);
  const type = string(o.type, `${where}.type`);
  const module = optionalString(o.module, `${where}.module`);
  const field = string(o.field, `${where}.field`);
  if (type === "invoke") {
    return { type, module, field, args: parseValues(o.args, `${where}.args`) ?? [] };
  }
  if (type === "get") return { type, module, field };
  throw new TypeError(`${where}: unknown action type ${type}`);
}

function parseCommand(json: Json, index: number): Command {
  const o = object(json, `commands[${index}]`);
  const kind = string(o.type, `commands[${index}].type`);
  const line = o.line;
  if (typeof line !== "number") throw new TypeError(`commands[${index}]: no line`);
  const where = `line ${line}`;
  switch (kind) {
    case "module":
    case "module_definition":
      return {
        type: "module",
        line,
        name: optionalString(o.name, `${where}.name`),
        filename: string(o.filename, `${where}.filename`),
        // wast2json writes `"definition": "true"`; wasm-tools a command of its own.
        definition: kind === "module_definition" || o.definition === "true" ||
          o.definition === true,
      };
    case "register":
      return {
        type: "register",
        line,
        as: string(o.as, `${where}.as`),
        name: optionalString(o.name, `${where}.name`),
      };
    case "action":
      return {
        type: "action",
        line,
        action: parseAction(o.action, `${where}.action`),
        expected: parseValues(o.expected, `${where}.expected`),
      };
    case "assert_return": {
      // wast2json writes `(either ...)` as an `either` list beside the action.
      const either = parseValues(o.either, `${where}.either`);
      return {
        type: "assert_return",
        line,
        action: parseAction(o.action, `${where}.action`),
        expected: either === undefined
          ? parseValues(o.expected, `${where}.expected`) ?? []
          : [{ type: "either", values: either }],
      };
    }
    case "assert_trap":
    case "assert_exhaustion":
      if (o.action === undefined && o.filename !== undefined) {
        // `(assert_trap (module ...))`: a start function that traps.
        return moduleAssertion("assert_uninstantiable", o, line, where);
      }
      return {
        type: kind,
        line,
        action: parseAction(o.action, `${where}.action`),
        text: optionalString(o.text, `${where}.text`) ?? "",
        expected: parseValues(o.expected, `${where}.expected`),
      };
    case "assert_invalid":
    case "assert_malformed":
    case "assert_unlinkable":
    case "assert_uninstantiable":
      return moduleAssertion(kind, o, line, where);
    default:
      return { type: "unknown", line, kind };
  }
}

function moduleAssertion(
  type: AssertModuleCommand["type"],
  o: JsonObject,
  line: number,
  where: string,
): AssertModuleCommand {
  const filename = string(o.filename, `${where}.filename`);
  const declared = optionalString(o.module_type, `${where}.module_type`);
  const moduleType = declared ?? (filename.endsWith(".wat") ? "text" : "binary");
  if (moduleType !== "binary" && moduleType !== "text") {
    throw new TypeError(`${where}: unknown module_type ${moduleType}`);
  }
  return {
    type,
    line,
    filename,
    moduleType,
    text: optionalString(o.text, `${where}.text`) ?? "",
  };
}

/**
 * Reads a converter's JSON into a {@linkcode Script}.
 *
 * @param name The file's name without `.wast`.
 * @param json The JSON text `wast2json` or `wasm-tools json-from-wast` wrote.
 * @returns The commands, in file order.
 */
export function parseScript(name: string, json: string): Script {
  const root = object(JSON.parse(json) as Json, name);
  const commands = root.commands;
  if (!Array.isArray(commands)) throw new TypeError(`${name}: no commands array`);
  return { name, commands: commands.map(parseCommand) };
}
