/**
 * TLS, mutual TLS and the bearer token, on the wire: the client against a
 * small HTTP/2 gRPC endpoint (Node's http2, certificates made by openssl for
 * this run) that answers grpc.health.v1 Check only to a caller presenting the
 * client certificate and the token. A stand-in until the Python servers serve
 * TLS; it checks what the client sends, not what a server does with it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Http2SecureServer, type IncomingHttpHeaders, createSecureServer } from "node:http2";
import type { TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  PerceptError,
  PerceptFaceClient,
  type TlsOptions,
  UnauthenticatedError,
} from "../src/index.js";
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "../src/gen/grpc/health/v1/health_pb.js";

const TOKEN = "s3cret-token";
const dir = mkdtempSync(join(tmpdir(), "percept-ts-tls-"));
const pem = (name: string) => readFileSync(join(dir, name));

/** A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  const openssl = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=percept-test-ca",
    "-keyout", "ca.key", "-out", "ca.crt"]); // prettier-ignore
  for (const [name, subject, ext] of [
    ["server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    ["client", "/CN=percept-test-client", "extendedKeyUsage=clientAuth"],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", `${name}.key`,
      "-out", `${name}.csr`]); // prettier-ignore
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-days", "1", "-extfile", `${name}.ext`, "-out", `${name}.crt`]); // prettier-ignore
  }
}

interface Seen {
  headers: IncomingHttpHeaders;
  clientCertificate: string | string[] | undefined;
}

let server: Http2SecureServer;
let address: string;
const seen: Seen[] = [];

function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

before(async () => {
  makeCertificates();
  server = createSecureServer({
    key: pem("server.key"),
    cert: pem("server.crt"),
    ca: pem("ca.crt"),
    requestCert: true,
    rejectUnauthorized: true,
    allowHTTP1: false,
  });
  server.on("stream", (stream, headers) => {
    const socket = stream.session?.socket as TLSSocket | undefined;
    seen.push({ headers, clientCertificate: socket?.getPeerCertificate()?.subject?.CN });
    stream.on("data", () => {});
    stream.on("end", () => {
      if (headers.authorization !== `Bearer ${TOKEN}`) {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-status": "16", "grpc-message": "bad token" },
          { endStream: true },
        );
        return;
      }
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      const reply = create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });
      stream.end(grpcFrame(toBinary(HealthCheckResponseSchema, reply)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  address = `127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(tls: TlsOptions | boolean, token?: string): PerceptFaceClient {
  return new PerceptFaceClient({ address, tls, token, timeoutMs: 5_000 });
}

async function failure(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => assert.fail("the call succeeded"),
    (error: unknown) => error,
  );
}

describe("TLS and the bearer token", () => {
  test("mutual TLS with the token: the call succeeds, and the server saw the certificate and the header", async () => {
    const c = client({ ca: pem("ca.crt"), cert: pem("client.crt"), key: pem("client.key") }, TOKEN);
    seen.length = 0;
    assert.equal(await c.checkHealth(), "SERVING");
    c.close();
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(seen[0]?.headers[":scheme"], "https");
    assert.equal(seen[0]?.clientCertificate, "percept-test-client");
  });

  test("no token: UnauthenticatedError with the server's message", async () => {
    const c = client({ ca: pem("ca.crt"), cert: pem("client.crt"), key: pem("client.key") });
    const error = await failure(c.checkHealth());
    c.close();
    assert.ok(error instanceof UnauthenticatedError, String(error));
    assert.equal(error.status, "UNAUTHENTICATED");
    assert.equal(error.message, "bad token");
  });

  test("a server certificate signed by an unknown CA is refused before anything is sent", async () => {
    const c = client(true, TOKEN); // the system's CAs only
    seen.length = 0;
    const error = await failure(c.checkHealth());
    c.close();
    assert.ok(error instanceof PerceptError, String(error));
    assert.match(error.message, /certificate/);
    assert.equal(seen.length, 0, "the token never reached the server");
  });

  test("without a client certificate the server refuses the connection", async () => {
    const c = client({ ca: pem("ca.crt") }, TOKEN);
    seen.length = 0;
    const error = await failure(c.checkHealth());
    c.close();
    assert.ok(error instanceof PerceptError, String(error));
    assert.match(error.message, /certificate required/);
    assert.equal(seen.length, 0);
  });
});
