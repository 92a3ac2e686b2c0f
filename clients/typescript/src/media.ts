/** Inputs shared by both services. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { VideoSourceSchema } from "./gen/percept/common/v1/video_pb.js";

/** A video: the whole file's bytes, or `{uri}` of a path or stream URL the server may open. */
export type VideoInput = Uint8Array | { uri: string };

/** Encoded frames (JPEG, PNG, WebP or BMP), as they come from a camera or a file. */
export type Frames = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export function videoSource(video: VideoInput): MessageInitShape<typeof VideoSourceSchema> {
  return video instanceof Uint8Array
    ? { source: { case: "content", value: video } }
    : { source: { case: "uri", value: video.uri } };
}

/** A video call's request: the caller's other fields, and the video as a `VideoSource`. */
export type VideoRequest<Fields extends object> = Fields & { video: MessageInitShape<typeof VideoSourceSchema> };

export function videoRequest<Fields extends object>(video: VideoInput, fields: Fields): VideoRequest<Fields> {
  return { ...fields, video: videoSource(video) };
}

/** One message of a live stream: a frame's image, and the call's options on the first. */
export interface FrameRequest<Options> {
  image: { content: Uint8Array };
  options: Options | undefined;
}

/**
 * Live frames as a stream's requests: each frame's image, with `options` on
 * the first only (the server applies the first message's options to the whole call).
 */
export async function* frameRequests<Options>(
  frames: Frames,
  options: Options | undefined,
): AsyncGenerator<FrameRequest<Options>> {
  let first = true;
  for await (const image of frames) {
    yield { image: { content: image }, options: first ? options : undefined };
    first = false;
  }
}
