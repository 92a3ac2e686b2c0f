/**
 * fromStack: the client finds a running `make run` stack's targets and token
 * from its stack.json, after the environment and before the defaults, and
 * sends the token only to the stack's own targets.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { fromStack } from "../src/index.js";

const VARS = ["PERCEPT_RUN_DIR", "PERCEPT_FACE_TARGET", "PERCEPT_OBJECT_TARGET", "PERCEPT_GRPC_TOKEN"];
let root: string;
let saved: Record<string, string | undefined>;

function writeStack(pid: number): void {
  const run = join(root, ".run");
  mkdirSync(run, { recursive: true });
  writeFileSync(join(run, "grpc.token"), "stack-token\n");
  writeFileSync(
    join(run, "stack.json"),
    JSON.stringify({
      url: "http://127.0.0.1:8123",
      face_targets: "127.0.0.1:41001,127.0.0.1:41002",
      object_targets: "127.0.0.1:42001",
      grpc_token_file: join(run, "grpc.token"),
      pid,
    }),
  );
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "percept-ts-stack-"));
  saved = Object.fromEntries(VARS.map((name) => [name, process.env[name]]));
  for (const name of VARS) delete process.env[name];
});

afterEach(() => {
  for (const name of VARS) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
  rmSync(root, { recursive: true, force: true });
});

test("a running stack's targets and token are found from a folder below it", () => {
  writeStack(process.pid);
  const below = join(root, "a", "b");
  mkdirSync(below, { recursive: true });
  assert.deepEqual(fromStack("face", {}, below), { address: "127.0.0.1:41001", token: "stack-token" });
  assert.deepEqual(fromStack("object", { timeoutMs: 5_000 }, below), {
    address: "127.0.0.1:42001",
    token: "stack-token",
    timeoutMs: 5_000,
  });
});

test("the environment wins, and the stack's token never goes to another address", () => {
  writeStack(process.pid);
  process.env.PERCEPT_FACE_TARGET = "10.1.2.3:50051";
  assert.deepEqual(fromStack("face", {}, root), { address: "10.1.2.3:50051" });
  process.env.PERCEPT_GRPC_TOKEN = "mine";
  assert.deepEqual(fromStack("face", {}, root), { address: "10.1.2.3:50051", token: "mine" });
  assert.deepEqual(fromStack("object", { address: "127.0.0.1:9" }, root), { address: "127.0.0.1:9", token: "mine" });
});

test("a stack whose launcher has stopped is ignored: the defaults apply", () => {
  writeStack(2 ** 22 + 12_345); // above Linux's pid_max default: no such process
  assert.deepEqual(fromStack("face", {}, root), { address: "127.0.0.1:50051" });
  assert.deepEqual(fromStack("object", {}, root), { address: "127.0.0.1:50052" });
});

test("PERCEPT_RUN_DIR names the stack from anywhere", () => {
  writeStack(process.pid);
  process.env.PERCEPT_RUN_DIR = join(root, ".run");
  assert.deepEqual(fromStack("object", {}, tmpdir()), { address: "127.0.0.1:42001", token: "stack-token" });
});
