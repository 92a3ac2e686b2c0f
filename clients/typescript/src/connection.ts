/**
 * One HTTP/2 connection to one Percept server (gRPC protocol, Connect's Node
 * transport), the options every call takes, and the health check both
 * clients share.
 */
import {
  type Client,
  type CallOptions as ConnectCallOptions,
  type Interceptor,
  createClient,
} from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { streaming, unary } from "./errors.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import {
  type FrameRequest,
  type Frames,
  frameRequests,
  type VideoInput,
  type VideoRequest,
  videoRequest,
} from "./media.js";

/** PEM text or bytes. */
export type Pem = string | Uint8Array;

/** TLS settings; any of them switches the connection to TLS. */
export interface TlsOptions {
  /** CA certificate(s) that signed the server's certificate; the system's CAs when unset. */
  ca?: Pem;
  /** Client certificate, for servers that require mutual TLS (with `key`). */
  cert?: Pem;
  /** The client certificate's private key. */
  key?: Pem;
  /** Host name to verify the server's certificate against; the address's host when unset. */
  serverName?: string;
}

/** How to reach a server. */
export interface ConnectionOptions {
  /**
   * "host:port", or a URL: "http://host:port" (HTTP/2 without TLS) or
   * "https://host:port". A bare "host:port" uses TLS when `tls` is given.
   */
  address: string;
  /** Use TLS: `true` trusts the system's CAs; an object gives a CA and a client certificate. */
  tls?: TlsOptions | boolean;
  /** Sent as `authorization: Bearer <token>` on every call. Use TLS when the server is not local. */
  token?: string;
  /** Deadline of a call that answers once (an image, model info, health), ms; default 60 000. */
  timeoutMs?: number;
  /** Deadline of a whole-video call, ms; default 3 600 000. Live streams have none unless a call gives one. */
  videoTimeoutMs?: number;
  /** Headers sent on every call, e.g. a fixed `x-request-id` prefix of your own. */
  headers?: Record<string, string>;
}

/** Per-call options. */
export interface CallOptions {
  /** The call's deadline in ms (its grpc-timeout); past it the call fails with DeadlineExceededError. */
  timeoutMs?: number;
  /** Cancels the call (CancelledError). */
  signal?: AbortSignal;
  /** Extra request headers, e.g. `{"x-request-id": "..."}` to find the call in the server's log. */
  headers?: Record<string, string>;
}

/** What grpc.health.v1 reports: "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN". */
export type ServingStatus = keyof typeof HealthCheckResponse_ServingStatus;

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_VIDEO_TIMEOUT_MS = 3_600_000;

function baseUrl(address: string, tls: boolean): string {
  if (/^https?:\/\//.test(address)) {
    return address;
  }
  return `${tls ? "https" : "http"}://${address}`;
}

function toBuffer(pem: Pem | undefined): Buffer | undefined {
  return pem === undefined ? undefined : Buffer.from(pem);
}

/** The connection and defaults a client's calls share. */
export abstract class Connection {
  /** The URL calls go to, e.g. "http://127.0.0.1:50051". */
  readonly baseUrl: string;
  protected readonly timeoutMs: number;
  protected readonly videoTimeoutMs: number;
  private readonly sessions: Http2SessionManager;
  private readonly health: Client<typeof Health>;
  private readonly transport: ReturnType<typeof createGrpcTransport>;

  constructor(options: ConnectionOptions) {
    const tls = options.tls === true ? {} : options.tls || undefined;
    this.baseUrl = baseUrl(options.address, tls !== undefined);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.videoTimeoutMs = options.videoTimeoutMs ?? DEFAULT_VIDEO_TIMEOUT_MS;
    const nodeOptions = tls
      ? {
          ca: toBuffer(tls.ca),
          cert: toBuffer(tls.cert),
          key: toBuffer(tls.key),
          servername: tls.serverName,
        }
      : {};
    this.sessions = new Http2SessionManager(this.baseUrl, undefined, nodeOptions);
    const interceptors: Interceptor[] = [];
    const headers = { ...options.headers };
    if (options.token !== undefined) {
      headers.authorization = `Bearer ${options.token}`;
    }
    if (Object.keys(headers).length > 0) {
      interceptors.push((next) => (request) => {
        for (const [name, value] of Object.entries(headers)) {
          if (!request.header.has(name)) {
            request.header.set(name, value);
          }
        }
        return next(request);
      });
    }
    this.transport = createGrpcTransport({
      baseUrl: this.baseUrl,
      sessionManager: this.sessions,
      interceptors,
    });
    this.health = this.client(Health);
  }

  /** A Connect client for any service the server has (the generated descriptors under `gen/`). */
  client<S extends DescService>(service: S): Client<S> {
    return createClient(service, this.transport);
  }

  /** The server's grpc.health.v1 status for `service` ("" means the whole server). */
  async checkHealth(service = "", call: CallOptions = {}): Promise<ServingStatus> {
    const response = await unary(this.health.check({ service }, this.callOptions(call, this.timeoutMs)));
    return HealthCheckResponse_ServingStatus[response.status] as ServingStatus;
  }

  /**
   * Resolves once the server reports SERVING (its model is loaded and warm);
   * rejects with the last failure after `timeoutMs` (default 120 000).
   */
  async waitUntilServing(options: { timeoutMs?: number; intervalMs?: number; service?: string } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    let last: unknown = undefined;
    for (;;) {
      try {
        const status = await this.checkHealth(options.service ?? "", { timeoutMs: 2_000 });
        if (status === "SERVING") {
          return;
        }
        last = new Error(`${this.baseUrl} reports ${status}`);
      } catch (error) {
        last = error;
      }
      if (Date.now() >= deadline) {
        throw last;
      }
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 250));
    }
  }

  /** Closes the connection; calls still running fail. The client cannot be used afterwards. */
  close(): void {
    this.sessions.abort();
  }

  /**
   * A whole-video call (`method`, a generated server-streaming method): the
   * video as the request's `VideoSource` beside `fields`, under the video
   * deadline, its responses yielded as they come.
   */
  protected videoCall<Fields extends object, Response>(
    method: (request: VideoRequest<Fields>, options: ConnectCallOptions) => AsyncIterable<Response>,
    video: VideoInput,
    fields: Fields,
    call: CallOptions,
  ): AsyncGenerator<Response, void, undefined> {
    return streaming(method(videoRequest(video, fields), this.callOptions(call, this.videoTimeoutMs)));
  }

  /**
   * A live call (`method`, a generated bidi-streaming method): each frame a
   * request, `options` on the first; no deadline unless `call.timeoutMs`.
   */
  protected liveCall<Options, Response>(
    method: (requests: AsyncIterable<FrameRequest<Options>>, options: ConnectCallOptions) => AsyncIterable<Response>,
    frames: Frames,
    options: Options | undefined,
    call: CallOptions,
  ): AsyncGenerator<Response, void, undefined> {
    return streaming(method(frameRequests(frames, options), this.callOptions(call, undefined)));
  }

  /** Connect call options from ours, with `defaultTimeoutMs` when the call gives none. */
  protected callOptions(call: CallOptions, defaultTimeoutMs: number | undefined) {
    return {
      timeoutMs: call.timeoutMs ?? defaultTimeoutMs,
      signal: call.signal,
      headers: call.headers,
    };
  }
}
