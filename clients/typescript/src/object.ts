/** The object service: YOLO detection and the model's description. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { type CallOptions, Connection, type ConnectionOptions } from "./connection.js";
import { unary } from "./errors.js";
import {
  type DetectObjectsInVideoRequest,
  type DetectObjectsInVideoRequestSchema,
  type DetectObjectsInVideoResponse,
  type DetectObjectsResponse,
  type DetectionOptionsSchema,
  type GetModelInfoResponse,
  ObjectService,
  type StreamObjectsResponse,
} from "./gen/percept/object/v1/object_service_pb.js";
import type { Frames, VideoInput } from "./media.js";

/** Thresholds and class filters (`percept.object.v1.DetectionOptions`); unset fields take the server's defaults. */
export type DetectionOptionsInit = MessageInitShape<typeof DetectionOptionsSchema>;

/** The rest of a video request: `frameStride`, `maxFrames`, `options`. */
export type ObjectVideoOptions = Omit<
  Exclude<MessageInitShape<typeof DetectObjectsInVideoRequestSchema>, DetectObjectsInVideoRequest>,
  "video" | "$typeName"
>;

/**
 * A client of one object service replica (or a load balancer in front of some).
 *
 * ```ts
 * const objects = new PerceptObjectClient({ address: "127.0.0.1:50052" });
 * const { detections } = await objects.detectObjects(await readFile("street.jpg"));
 * ```
 */
export class PerceptObjectClient extends Connection {
  /** The generated Connect client, for anything the helpers below do not cover. */
  readonly raw: Client<typeof ObjectService>;

  constructor(options: ConnectionOptions) {
    super(options);
    this.raw = this.client(ObjectService);
  }

  /** The objects in one encoded image, highest confidence first, boxes in source pixels. */
  detectObjects(
    image: Uint8Array,
    options?: DetectionOptionsInit,
    call: CallOptions = {},
  ): Promise<DetectObjectsResponse> {
    return unary(
      this.raw.detectObjects({ image: { content: image }, options }, this.callOptions(call, this.timeoutMs)),
    );
  }

  /** The loaded model: name, backend, device, input size and class names in id order. */
  modelInfo(call: CallOptions = {}): Promise<GetModelInfoResponse> {
    return unary(this.raw.getModelInfo({}, this.callOptions(call, this.timeoutMs)));
  }

  /**
   * The detections in each processed frame of a video, yielded in frame
   * order as soon as each is done. Stop iterating to cancel the work.
   */
  detectObjectsInVideo(
    video: VideoInput,
    options: ObjectVideoOptions = {},
    call: CallOptions = {},
  ): AsyncGenerator<DetectObjectsInVideoResponse, void, undefined> {
    return this.videoCall(this.raw.detectObjectsInVideo, video, options, call);
  }

  /**
   * Live frames in, the detections of each frame out, in order, while frames
   * keep coming. No deadline unless `call.timeoutMs`.
   */
  streamObjects(
    frames: Frames,
    options?: DetectionOptionsInit,
    call: CallOptions = {},
  ): AsyncGenerator<StreamObjectsResponse, void, undefined> {
    return this.liveCall(this.raw.streamObjects, frames, options, call);
  }
}
