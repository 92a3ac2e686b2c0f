/** The face service: detection, landmarks, encodings and comparison. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { type CallOptions, Connection, type ConnectionOptions } from "./connection.js";
import { unary } from "./errors.js";
import {
  type CompareFacesRequestSchema,
  type CompareFacesResponse,
  type DetectFacesInVideoRequest,
  type DetectFacesInVideoRequestSchema,
  type DetectFacesInVideoResponse,
  type DetectFacesResponse,
  type FaceOptionsSchema,
  FaceService,
  type StreamFacesResponse,
} from "./gen/percept/face/v1/face_service_pb.js";
import type { Frames, VideoInput } from "./media.js";

/** What to detect and return for each face (`percept.face.v1.FaceOptions`); unset fields take the server's defaults. */
export type FaceOptionsInit = MessageInitShape<typeof FaceOptionsSchema>;

/** The rest of a video request: `frameStride`, `maxFrames`, `options`. */
export type FaceVideoOptions = Omit<
  Exclude<MessageInitShape<typeof DetectFacesInVideoRequestSchema>, DetectFacesInVideoRequest>,
  "video" | "$typeName"
>;

/** What a probe image's faces are compared with: an image, or known 128-d encodings. */
export type FaceReference = Uint8Array | { encodings: ArrayLike<number>[] };

/** Comparison settings: `tolerance` ((0, 1], default 0.6) and detection `options`. */
export interface CompareOptions {
  tolerance?: number;
  options?: FaceOptionsInit;
}

/**
 * A client of one face service replica (or a load balancer in front of some).
 *
 * ```ts
 * const faces = new PerceptFaceClient({ address: "127.0.0.1:50051" });
 * const { faces: found } = await faces.detectFaces(await readFile("photo.jpg"));
 * ```
 */
export class PerceptFaceClient extends Connection {
  /** The generated Connect client, for anything the helpers below do not cover. */
  readonly raw: Client<typeof FaceService>;

  constructor(options: ConnectionOptions) {
    super(options);
    this.raw = this.client(FaceService);
  }

  /** The faces in one encoded image (JPEG, PNG, WebP or BMP), boxes in source pixels. */
  detectFaces(image: Uint8Array, options?: FaceOptionsInit, call: CallOptions = {}): Promise<DetectFacesResponse> {
    return unary(
      this.raw.detectFaces({ image: { content: image }, options }, this.callOptions(call, this.timeoutMs)),
    );
  }

  /** Every face of `probe` against every reference face or encoding: distances and matches. */
  compareFaces(
    probe: Uint8Array,
    reference: FaceReference,
    options: CompareOptions = {},
    call: CallOptions = {},
  ): Promise<CompareFacesResponse> {
    const request: MessageInitShape<typeof CompareFacesRequestSchema> = {
      probe: { content: probe },
      reference:
        reference instanceof Uint8Array
          ? { case: "referenceImage", value: { content: reference } }
          : {
              case: "referenceEncodings",
              value: { encodings: reference.encodings.map((values) => ({ values: Array.from(values) })) },
            },
      tolerance: options.tolerance,
      options: options.options,
    };
    return unary(this.raw.compareFaces(request, this.callOptions(call, this.timeoutMs)));
  }

  /**
   * The faces in each processed frame of a video, yielded in frame order as
   * soon as each is done. `video` is the file's bytes or `{uri}` of a path
   * or stream the server may open. Stop iterating to cancel the work.
   */
  detectFacesInVideo(
    video: VideoInput,
    options: FaceVideoOptions = {},
    call: CallOptions = {},
  ): AsyncGenerator<DetectFacesInVideoResponse, void, undefined> {
    return this.videoCall(this.raw.detectFacesInVideo, video, options, call);
  }

  /**
   * Live frames in, the faces of each frame out, in order, while frames keep
   * coming. `options` apply to every frame. No deadline unless `call.timeoutMs`.
   */
  streamFaces(
    frames: Frames,
    options?: FaceOptionsInit,
    call: CallOptions = {},
  ): AsyncGenerator<StreamFacesResponse, void, undefined> {
    return this.liveCall(this.raw.streamFaces, frames, options, call);
  }
}
