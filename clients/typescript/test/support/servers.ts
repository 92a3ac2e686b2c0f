/**
 * Real Percept servers for the tests: `python -m face_service` and
 * `python -m object_service` from this checkout, on free ports, ready when
 * the client's own health check says SERVING; and the Python fixture script.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { PerceptFaceClient, PerceptObjectClient } from "../../src/index.js";

/** The checkout this file is in: the nearest parent holding face_service/ and protos/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!(existsSync(join(dir, "face_service", "__main__.py")) && existsSync(join(dir, "protos")))) {
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`no Percept checkout above ${fileURLToPath(import.meta.url)}`);
    }
    dir = parent;
  }
  return dir;
}

export const ROOT = repoRoot();
/** The project's virtualenv Python (`make setup` creates it); PERCEPT_PYTHON overrides. */
export const PYTHON = process.env.PERCEPT_PYTHON ?? join(ROOT, ".venv", "bin", "python");

/** The environment the servers and the fixture script run with: this checkout first on the path. */
function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, PYTHONPATH: `${ROOT}:${join(ROOT, "gen")}`, YOLO_OFFLINE: "1", ...extra };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** One server process; `start()` resolves once it reports SERVING. */
export class ServerProcess {
  readonly logPath: string;
  port = 0;
  private process: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;

  constructor(
    readonly module: "face_service" | "object_service",
    private readonly env: Record<string, string>,
    readonly workDir: string,
  ) {
    this.logPath = join(workDir, `${module}.log`);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8") : "";
  }

  async start(timeoutMs = 240_000): Promise<this> {
    this.port = await freePort();
    const out = openSync(this.logPath, "a");
    const child = spawn(PYTHON, ["-m", this.module, "--port", String(this.port), "--workers", "1"], {
      cwd: ROOT,
      env: pythonEnv(this.env),
      stdio: ["ignore", out, out],
    });
    this.process = child;
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    // The test process may die without running `after`: take the server along.
    process.once("exit", () => child.kill("SIGKILL"));

    const client =
      this.module === "face_service"
        ? new PerceptFaceClient({ address: this.address })
        : new PerceptObjectClient({ address: this.address });
    try {
      const died = this.exited.then((code) => {
        throw new Error(`${this.module} exited with ${code} before serving:\n${this.log()}`);
      });
      await Promise.race([client.waitUntilServing({ timeoutMs }), died]);
    } catch (error) {
      await this.stop();
      throw new Error(`${this.module} did not become SERVING: ${error}\n${this.log().slice(-4000)}`);
    } finally {
      client.close();
    }
    return this;
  }

  /** SIGTERM (the server drains), then SIGKILL after 30 s. */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Both servers, one worker each; the object server runs the project's demo model. */
export class Servers {
  readonly workDir = mkdtempSync(join(tmpdir(), "percept-ts-"));
  readonly face = new ServerProcess("face_service", {}, this.workDir);
  readonly object = new ServerProcess(
    "object_service",
    {
      OBJECT_MODEL: join(ROOT, "object_service", "models", "shapes-yolo.pt"),
      // The ONNX export of the demo model is cached across runs, as for a user.
      OBJECT_CACHE_DIR: process.env.OBJECT_CACHE_DIR ?? join(tmpdir(), "percept-ts-onnx-cache"),
    },
    this.workDir,
  );

  async start(): Promise<this> {
    const started = await Promise.allSettled([this.face.start(), this.object.start()]);
    const failed = started.find((result) => result.status === "rejected");
    if (failed) {
      await this.stop();
      throw failed.reason;
    }
    return this;
  }

  faceClient(): PerceptFaceClient {
    return new PerceptFaceClient({ address: this.face.address });
  }

  objectClient(): PerceptObjectClient {
    return new PerceptObjectClient({ address: this.object.address });
  }

  async stop(): Promise<void> {
    await Promise.all([this.face.stop(), this.object.stop()]);
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** A box as [left, top, right, bottom]. */
export type Box = [number, number, number, number];
export interface ShapeTruth {
  label: string;
  classId: number;
  box: Box;
}

/** What test/fixtures.py writes: inputs and the models' direct answers about them. */
export interface Fixtures {
  zidane: {
    path: string;
    width: number;
    height: number;
    faces: Box[];
    encodings: number[][];
    /** face_recognition's landmarks of each face: part name (snake_case) to [x, y] points. */
    landmarks: Record<string, [number, number][]>[];
  };
  faceVideo: { path: string; faces: Box[][]; fps: number };
  liveFrames: { path: string; faces: Box[] }[];
  scene: { path: string; width: number; height: number; shapes: ShapeTruth[] };
  shapesVideo: { path: string; shapes: ShapeTruth[][] };
  classNames: string[];
  badImages: { path: string; message: string }[];
}

/** Runs test/fixtures.py into `dir`. */
export async function makeFixtures(dir: string): Promise<Fixtures> {
  const script = join(ROOT, "clients", "typescript", "test", "fixtures.py");
  await promisify(execFile)(PYTHON, [script, dir], { cwd: ROOT, env: pythonEnv(), maxBuffer: 1 << 24 });
  return JSON.parse(readFileSync(join(dir, "fixtures.json"), "utf8")) as Fixtures;
}
