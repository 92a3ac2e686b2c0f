/**
 * Errors: every failed call raises a PerceptError carrying the gRPC status,
 * the server's own message and the call's request id; the statuses the
 * services use each have a subclass, so callers can branch with instanceof.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** gRPC status names, indexed by code (0-16). */
const STATUS_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A gRPC status name such as "INVALID_ARGUMENT". */
export type StatusName = (typeof STATUS_NAMES)[number];

/** A call failed. `message` is the server's message, unprefixed. */
export class PerceptError extends Error {
  /** The gRPC status code (Connect's `Code` enum has the same numbers). */
  readonly code: Code;
  /** The gRPC status name, e.g. "INVALID_ARGUMENT". */
  readonly status: StatusName;
  /** The call's `x-request-id` (the server's log lines carry it), when the server sent one. */
  readonly requestId: string | undefined;
  /** Response headers and trailers of the failed call. */
  readonly metadata: Headers;

  constructor(code: Code, message: string, metadata: Headers = new Headers(), options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = STATUS_NAMES[code] ?? "UNKNOWN";
    this.metadata = metadata;
    this.requestId = metadata.get("x-request-id") ?? undefined;
  }
}

/** The input was refused: bad image bytes, an out-of-range option (the message says what is accepted). */
export class InvalidArgumentError extends PerceptError {}
/** The call's deadline (`timeoutMs`) passed before it finished. */
export class DeadlineExceededError extends PerceptError {}
/** A named thing does not exist. */
export class NotFoundError extends PerceptError {}
/** The server may not open what was asked for (a video `uri` outside its allow-list). */
export class PermissionDeniedError extends PerceptError {}
/** A message over the server's size limit. */
export class ResourceExhaustedError extends PerceptError {}
/** The server cannot be reached, is draining or is restarting workers: retry, perhaps elsewhere. */
export class UnavailableError extends PerceptError {}
/** No valid credentials: a missing or wrong bearer token. */
export class UnauthenticatedError extends PerceptError {}
/** The call was cancelled (an AbortSignal fired, or the caller stopped reading a stream). */
export class CancelledError extends PerceptError {}
/**
 * The server failed unexpectedly (its log has the details under `requestId`),
 * or the connection could not be set up (a TLS certificate not trusted or not
 * presented: the message says which).
 */
export class InternalError extends PerceptError {}

const CLASS_BY_CODE: Partial<Record<Code, typeof PerceptError>> = {
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.DeadlineExceeded]: DeadlineExceededError,
  [Code.NotFound]: NotFoundError,
  [Code.PermissionDenied]: PermissionDeniedError,
  [Code.ResourceExhausted]: ResourceExhaustedError,
  [Code.Unavailable]: UnavailableError,
  [Code.Unauthenticated]: UnauthenticatedError,
  [Code.Canceled]: CancelledError,
  [Code.Internal]: InternalError,
};

/** The PerceptError for a failed call (a ConnectError); anything else is returned unchanged. */
export function toPerceptError(error: unknown): unknown {
  if (error instanceof PerceptError || !(error instanceof ConnectError)) {
    return error;
  }
  const Class = CLASS_BY_CODE[error.code] ?? PerceptError;
  return new Class(error.code, error.rawMessage, error.metadata, { cause: error });
}

/** Await a unary call, turning its failure into a PerceptError. */
export async function unary<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    throw toPerceptError(error);
  }
}

/**
 * Re-yield a streaming call, turning its failure into a PerceptError. Leaving
 * the loop early (break, return, throw) cancels the call on the server.
 */
export async function* streaming<T>(responses: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  try {
    yield* responses;
  } catch (error) {
    throw toPerceptError(error);
  }
}
