/**
 * JSON requests over `node:http` / `node:https` with keep-alive connections.
 *
 * The API's JSON calls go this way rather than through `fetch`: undici's
 * `fetch` streams every request body, and a round trip to a local `kyu
 * serve` cost about three times as much (1.3–2.1 ms against 0.4–0.8 ms,
 * measured 2026-11-27), which bounded a worker's claim → acknowledge cycle.
 * The event stream still uses `fetch` (it reads the body as a stream).
 */
import http from "node:http";
import https from "node:https";

/** An answer: its status and its whole body as text. */
export interface Reply {
  status: number;
  ok: boolean;
  text(): Promise<string>;
}

const agents = {
  "http:": new http.Agent({ keepAlive: true }),
  "https:": new https.Agent({ keepAlive: true }),
};

/** Sends one request and reads the whole answer. Rejects on a network error or an abort. */
export function send(
  method: string,
  url: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal?: AbortSignal,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const protocol = target.protocol === "https:" ? "https:" : "http:";
    const h = { ...headers };
    if (body !== undefined) h["content-length"] = String(Buffer.byteLength(body));
    const options = { method, headers: h, agent: agents[protocol], signal };
    const onReply = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const status = res.statusCode ?? 0;
        resolve({ status, ok: status >= 200 && status < 300, text: async () => text });
      });
    };
    const req = protocol === "https:" ? https.request(target, options, onReply) : http.request(target, options, onReply);
    req.on("error", reject);
    req.end(body);
  });
}
