/**
 * Percept's TypeScript client: typed helpers over the generated protobuf-es
 * code for the face and object gRPC services.
 */
export { PerceptFaceClient } from "./face.js";
export type { CompareOptions, FaceOptionsInit, FaceReference, FaceVideoOptions } from "./face.js";
export { PerceptObjectClient } from "./object.js";
export type { DetectionOptionsInit, ObjectVideoOptions } from "./object.js";
export { Connection } from "./connection.js";
export { fromStack, stackFile } from "./stack.js";
export type { ServiceName } from "./stack.js";
export type { CallOptions, ConnectionOptions, Pem, ServingStatus, TlsOptions } from "./connection.js";
export type { Frames, VideoInput } from "./media.js";
export {
  CancelledError,
  DeadlineExceededError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PerceptError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  toPerceptError,
} from "./errors.js";
export type { StatusName } from "./errors.js";
export { Code } from "@connectrpc/connect";

// The generated messages: every request, response and option type.
export * from "./gen/percept/common/v1/image_pb.js";
export * from "./gen/percept/common/v1/video_pb.js";
export * from "./gen/percept/face/v1/face_service_pb.js";
export * from "./gen/percept/object/v1/object_service_pb.js";
