/**
 * Where the client finds a running `make run` stack without being told, as
 * the Python SDK does (`percept.stack`): the environment first
 * (PERCEPT_FACE_TARGET, PERCEPT_OBJECT_TARGET, PERCEPT_GRPC_TOKEN), then the
 * stack's `stack.json` (PERCEPT_RUN_DIR's, else `.run/stack.json` in the
 * current directory or the nearest parent that has one; a file whose launcher
 * is no longer running is ignored), then 127.0.0.1:50051 / :50052 with no
 * token. The stack's token goes only to the stack's own targets.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { ConnectionOptions } from "./connection.js";

/** Which service to reach. */
export type ServiceName = "face" | "object";

const DEFAULTS: Record<ServiceName, string> = { face: "127.0.0.1:50051", object: "127.0.0.1:50052" };
const ENV: Record<ServiceName, string> = { face: "PERCEPT_FACE_TARGET", object: "PERCEPT_OBJECT_TARGET" };

interface StackFile {
  face_targets?: string;
  object_targets?: string;
  grpc_token_file?: string | null;
  pid: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The stack.json to read, or undefined. */
export function stackFile(cwd: string = process.cwd()): string | undefined {
  const runDir = process.env.PERCEPT_RUN_DIR;
  if (runDir) {
    const path = join(runDir, "stack.json");
    return existsSync(path) ? path : undefined;
  }
  for (let folder = resolve(cwd); ; folder = dirname(folder)) {
    const path = join(folder, ".run", "stack.json");
    if (existsSync(path)) {
      return path;
    }
    if (dirname(folder) === folder) {
      return undefined;
    }
  }
}

function readStack(cwd?: string): StackFile | undefined {
  const path = stackFile(cwd);
  if (path === undefined) {
    return undefined;
  }
  try {
    const stack = JSON.parse(readFileSync(path, "utf8")) as StackFile;
    return Number.isInteger(stack.pid) && alive(stack.pid) ? stack : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Connection options for `service`: `new PerceptFaceClient(fromStack("face"))`.
 * `overrides` win over everything found; with several targets the first is used.
 */
export function fromStack(
  service: ServiceName,
  overrides: Partial<ConnectionOptions> = {},
  cwd?: string,
): ConnectionOptions {
  const envAddress = process.env[ENV[service]];
  const envToken = process.env.PERCEPT_GRPC_TOKEN || undefined;
  const stack = overrides.address && (overrides.token ?? envToken) !== undefined ? undefined : readStack(cwd);
  const stackTargets = stack?.[service === "face" ? "face_targets" : "object_targets"] || undefined;
  const address = (overrides.address ?? envAddress ?? stackTargets ?? DEFAULTS[service]).split(",")[0].trim();
  let token = overrides.token ?? envToken;
  if (token === undefined && stack?.grpc_token_file && stackTargets?.split(",").map((t) => t.trim()).includes(address)) {
    token = readFileSync(stack.grpc_token_file, "utf8").trim() || undefined;
  }
  return { ...overrides, address, ...(token === undefined ? {} : { token }) };
}
