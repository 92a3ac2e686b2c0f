/**
 * The TypeScript client against real face and object servers started from
 * this checkout (real models, real images and videos); expectations come from
 * the models called directly in Python (test/fixtures.py), not from constants.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import {
  Backend,
  DeadlineExceededError,
  type Detection,
  InvalidArgumentError,
  PerceptError,
  type Point,
  type PerceptFaceClient,
  type PerceptObjectClient,
} from "../src/index.js";
import { type Box, type Fixtures, Servers, type ShapeTruth, makeFixtures } from "./support/servers.js";

let servers: Servers;
let fx: Fixtures;
let faces: PerceptFaceClient;
let objects: PerceptObjectClient;

before(
  async () => {
    servers = new Servers();
    // Models load while the fixtures are computed.
    [, fx] = await Promise.all([servers.start(), makeFixtures(servers.workDir)]);
    faces = servers.faceClient();
    objects = servers.objectClient();
  },
  { timeout: 300_000 },
);

after(async () => {
  faces?.close();
  objects?.close();
  await servers?.stop();
});

function ltrb(box: { left: number; top: number; right: number; bottom: number } | undefined): Box {
  assert.ok(box, "a box");
  return [box.left, box.top, box.right, box.bottom];
}

function iou(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) {
    return 0;
  }
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/** Every true shape is found (IoU >= 0.5) with its label and class id. */
function assertFound(detections: Detection[], truth: ShapeTruth[], where: string): void {
  for (const shape of truth) {
    const match = detections.find((d) => iou(ltrb(d.box), shape.box) >= 0.5);
    assert.ok(match, `${where}: no detection over the ${shape.label} at ${shape.box}`);
    assert.equal(match.label, shape.label, where);
    assert.equal(match.classId, shape.classId, where);
  }
}

/** Frames answered once each, in order: indexes 0 .. n-1. */
function assertInOrder(frames: { frameIndex: bigint }[], n: number): void {
  assert.deepEqual(
    frames.map((f) => f.frameIndex),
    Array.from({ length: n }, (_, i) => BigInt(i)),
  );
}

/** A whole video's frames: each once, in order, each announcing the video's length. */
function assertWholeVideo(frames: { frameIndex: bigint; expectedFrames: bigint }[], n: number): void {
  assertInOrder(frames, n);
  assert.ok(frames.every((f) => f.expectedFrames === BigInt(n)));
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) {
    out.push(item);
  }
  return out;
}

describe("face service", () => {
  test("detectFaces returns the boxes face_recognition finds, in source pixels", async () => {
    const response = await faces.detectFaces(await readFile(fx.zidane.path));
    assert.ok(fx.zidane.faces.length > 0, "the test image must contain faces");
    assert.deepEqual(
      response.faces.map((f) => ltrb(f.box)),
      fx.zidane.faces,
    );
    assert.deepEqual([response.imageWidth, response.imageHeight], [fx.zidane.width, fx.zidane.height]);
    // Nothing was asked beyond boxes.
    assert.equal(response.faces[0]?.landmarks, undefined);
    assert.deepEqual(response.faces[0]?.encoding, []);
  });

  test("options reach the server: encodings and landmarks equal face_recognition's", async () => {
    const response = await faces.detectFaces(await readFile(fx.zidane.path), {
      returnEncodings: true,
      returnLandmarks: true,
    });
    assert.equal(response.faces.length, fx.zidane.faces.length);
    response.faces.forEach((face, i) => {
      const encoding = fx.zidane.encodings[i] ?? [];
      assert.equal(face.encoding.length, 128);
      face.encoding.forEach((value, j) => assert.ok(Math.abs(value - (encoding[j] ?? NaN)) < 1e-4, `value ${j}`));
      const marks = face.landmarks;
      assert.ok(marks);
      const parts = Object.entries(fx.zidane.landmarks[i] ?? {});
      assert.equal(parts.length, 9);
      for (const [part, points] of parts) {
        const name = part.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
        const got: Point[] | undefined = (marks as unknown as Record<string, Point[] | undefined>)[name];
        assert.ok(got, part);
        assert.deepEqual(
          got.map((point) => [point.x, point.y]),
          points,
          part,
        );
      }
    });
  });

  test("detectFacesInVideo yields every frame in order with the faces found in it", async () => {
    const frames = await collect(faces.detectFacesInVideo(await readFile(fx.faceVideo.path)));
    const n = fx.faceVideo.faces.length;
    assertWholeVideo(frames, n);
    // the last frame says the video ended where its container said it would
    assert.ok(frames.slice(0, -1).every((f) => f.summary === undefined));
    assert.equal(frames.at(-1)?.summary?.partial, false);
    assert.equal(frames.at(-1)?.summary?.processedFrames, BigInt(n));
    // one face throughout: one track, its id on every frame's face
    const ids = new Set(frames.flatMap((f) => f.faces.map((face) => face.trackId)));
    assert.equal(ids.size, 1);
    assert.ok(!ids.has(0), "the face is tracked");
    const tracks = frames.at(-1)?.summary?.tracks ?? [];
    assert.deepEqual(tracks.map((t) => t.trackId), [...ids]);
    assert.equal(tracks[0]?.framesSeen, n);
    frames.forEach((frame, i) => {
      assert.ok(Math.abs(frame.timestamp - i / fx.faceVideo.fps) < 1e-3, `timestamp of frame ${i}`);
      assert.deepEqual(
        frame.faces.map((f) => ltrb(f.box)),
        fx.faceVideo.faces[i],
        `faces of frame ${i}`,
      );
    });
  });

  test("a video cut in half succeeds with its good frames and a partial summary", async () => {
    const whole = await readFile(fx.faceVideo.path);
    const frames = await collect(faces.detectFacesInVideo(whole.subarray(0, whole.length >> 1)));
    const n = fx.faceVideo.faces.length;
    const last = frames.at(-1);
    assert.ok(last?.summary?.partial, "the last frame says the video is partial");
    assert.ok(frames.length >= 1 && frames.length < n);
    assert.equal(last.summary.expectedFrames, BigInt(n));
    assert.equal(last.summary.processedFrames, BigInt(frames.length));
    assert.equal(last.summary.lastFrameIndex, last.frameIndex);
    assert.match(last.summary.reason, /could not be decoded from frame \d+ on/);
  });

  test("video options: frameStride and maxFrames pick the frames", async () => {
    const frames = await collect(
      faces.detectFacesInVideo(await readFile(fx.faceVideo.path), { frameStride: 2, maxFrames: 2 }),
    );
    assert.deepEqual(
      frames.map((f) => [f.frameIndex, f.expectedFrames]),
      [
        [0n, 2n],
        [2n, 2n],
      ],
    );
    assert.deepEqual(ltrb(frames[1]?.faces[0]?.box), fx.faceVideo.faces[2]?.[0]);
  });

  test("streamFaces answers each live frame while the client is still sending", async () => {
    const images = await Promise.all(fx.liveFrames.map((f) => readFile(f.path)));
    // The next frame is sent only once the previous one was answered: a
    // client or server that answered only at the end of the stream would hang
    // here (and fail on the deadline).
    let answered = 0;
    let wake: () => void = () => {};
    async function* camera(): AsyncGenerator<Uint8Array> {
      for (const [i, image] of images.entries()) {
        while (answered < i) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        yield image;
      }
    }
    const got = [];
    for await (const response of faces.streamFaces(camera(), undefined, { timeoutMs: 60_000 })) {
      got.push(response);
      answered += 1;
      wake();
    }
    assertInOrder(got, images.length);
    got.forEach((response, i) => {
      assert.deepEqual(
        response.faces.map((f) => ltrb(f.box)),
        fx.liveFrames[i]?.faces,
      );
    });
  });

  test("a bad image is InvalidArgumentError with the server's message, and the server keeps serving", async () => {
    assert.ok(fx.badImages.length > 0);
    for (const bad of fx.badImages) {
      const error = await faces.detectFaces(await readFile(bad.path)).then(
        () => assert.fail(`${bad.path} was accepted`),
        (e: unknown) => e,
      );
      assert.ok(error instanceof InvalidArgumentError, String(error));
      assert.ok(error instanceof PerceptError);
      assert.equal(error.status, "INVALID_ARGUMENT");
      assert.equal(error.code, 3);
      assert.equal(error.message, bad.message);
      assert.match(error.requestId ?? "", /^[0-9a-f]{16,}$/, "the request id the server logged");
    }
    const response = await faces.detectFaces(await readFile(fx.zidane.path));
    assert.equal(response.faces.length, fx.zidane.faces.length);
  });

  test("a call past its deadline is DeadlineExceededError", async () => {
    const video = await readFile(fx.faceVideo.path);
    await assert.rejects(collect(faces.detectFacesInVideo(video, {}, { timeoutMs: 1 })), DeadlineExceededError);
  });
});

describe("object service", () => {
  test("modelInfo names the demo model's classes in id order", async () => {
    const info = await objects.modelInfo();
    assert.deepEqual(info.classNames, fx.classNames);
    assert.equal(info.backend, Backend.ONNXRUNTIME);
    assert.equal(info.task, "detect");
  });

  test("detectObjects finds every shape of a generated scene with its label", async () => {
    const response = await objects.detectObjects(await readFile(fx.scene.path));
    assert.deepEqual([response.imageWidth, response.imageHeight], [fx.scene.width, fx.scene.height]);
    assertFound(response.detections, fx.scene.shapes, "scene");
    const confidences = response.detections.map((d) => d.confidence);
    assert.deepEqual(
      confidences,
      [...confidences].sort((a, b) => b - a),
      "highest confidence first",
    );
  });

  test("options reach the server: a class filter keeps only that class", async () => {
    const label = fx.scene.shapes[0]?.label ?? "";
    const response = await objects.detectObjects(await readFile(fx.scene.path), { classNames: [label] });
    assert.ok(response.detections.length > 0);
    assert.ok(response.detections.every((d) => d.label === label));
    assertFound(
      response.detections,
      fx.scene.shapes.filter((s) => s.label === label),
      "filtered scene",
    );
  });

  test("an unknown class is InvalidArgumentError naming the model's classes", async () => {
    const error = await objects.detectObjects(await readFile(fx.scene.path), { classNames: ["unicorn"] }).then(
      () => assert.fail("accepted"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof InvalidArgumentError, String(error));
    assert.match(error.message, /unicorn/);
    for (const name of fx.classNames) {
      assert.ok(error.message.includes(name), `${name} in: ${error.message}`);
    }
  });

  test("detectObjectsInVideo yields every frame in order with the moving shapes", async () => {
    const frames = await collect(objects.detectObjectsInVideo(await readFile(fx.shapesVideo.path)));
    const n = fx.shapesVideo.shapes.length;
    assertWholeVideo(frames, n);
    frames.forEach((frame, i) => assertFound(frame.detections, fx.shapesVideo.shapes[i] ?? [], `frame ${i}`));
  });

  test("streamObjects answers each frame in order, with the first frame's options applied to all", async () => {
    const scene = await readFile(fx.scene.path);
    // A threshold between the scene's lowest and highest confidences, so it must drop something.
    const all = (await objects.detectObjects(scene)).detections;
    const confidences = all.map((d) => d.confidence);
    const threshold = (Math.min(...confidences) + Math.max(...confidences)) / 2;
    const kept = all.filter((d) => d.confidence >= threshold);
    assert.ok(kept.length > 0 && kept.length < all.length);
    const got = await collect(objects.streamObjects([scene, scene, scene], { confidenceThreshold: threshold }));
    assertInOrder(got, 3);
    for (const response of got) {
      assert.deepEqual(
        response.detections.map((d) => [d.label, ltrb(d.box)]),
        kept.map((d) => [d.label, ltrb(d.box)]),
      );
    }
  });
});
