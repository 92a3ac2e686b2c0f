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
