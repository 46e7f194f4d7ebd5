/**
 * Errors the client throws. Every error the API answers is a {@link KyuError}
 * carrying the API's `code`, `message` and `field` (the request field at
 * fault, if one is) and the HTTP status; a subclass per status lets callers
 * catch what they handle:
 *
 * ```ts
 * try { await kyu.enqueue("send_email", args, { queue: "" }); }
 * catch (e) { if (e instanceof InvalidError) console.log(e.field, e.message); }
 * ```
 */

/** The body of every API error: `{"error": {"code", "message", "field"}}`. */
export interface ApiErrorBody {
  /** A stable machine-readable code, e.g. `invalid`, `not_found`, `forbidden_scope`. */
  code: string;
  /** What was wrong, where, and what is accepted. */
  message: string;
  /** The request field at fault, if one is. */
  field?: string | null;
}

/** An error the kyu API answered (or could not answer: see {@link ConnectionError}). */
export class KyuError extends Error {
  /** The HTTP status (0 when no answer came). */
  readonly status: number;
  /** The API's machine-readable code, e.g. `invalid`, `unauthorized`, `not_found`. */
  readonly code: string;
  /** The request field at fault, if one is. */
  readonly field: string | undefined;

  constructor(status: number, body: ApiErrorBody, options?: { cause?: unknown }) {
    super(body.message, options);
    this.name = new.target.name;
    this.status = status;
    this.code = body.code;
    this.field = body.field ?? undefined;
  }
}

/** 400: the request was wrong (unreadable JSON, unknown field, a refused value); see `field`. */
export class InvalidError extends KyuError {}
/** 401: no token, or a token that is unknown, revoked or expired. */
export class UnauthorizedError extends KyuError {}
/** 403: the token lacks the route's scope, or names a queue it may not touch. */
export class ForbiddenError extends KyuError {}
/** 404: no such job, schedule or route (or one the token may not see). */
export class NotFoundError extends KyuError {}
/** 409: a conflict with the stored state (e.g. a stale lease). */
export class ConflictError extends KyuError {}
/** 413: the request body is over the server's limit (default 2 MiB). */
export class PayloadTooLargeError extends KyuError {}
/** 503: the database did not answer; retrying later may work. */
export class UnavailableError extends KyuError {}
/** No HTTP answer: the server could not be reached or the connection broke. */
export class ConnectionError extends KyuError {}
/** {@link Kyu.wait} gave up before the job finished. */
export class WaitTimeoutError extends KyuError {}

/** The error class for an HTTP status. */
export function errorFor(status: number, body: ApiErrorBody): KyuError {
  switch (status) {
    case 400:
      return new InvalidError(status, body);
    case 401:
      return new UnauthorizedError(status, body);
    case 403:
      return new ForbiddenError(status, body);
    case 404:
      return new NotFoundError(status, body);
    case 409:
      return new ConflictError(status, body);
    case 413:
      return new PayloadTooLargeError(status, body);
    case 503:
      return new UnavailableError(status, body);
    default:
      return new KyuError(status, body);
  }
}
