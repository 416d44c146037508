/** An error the gateway answers in OpenAI's error format, with the status, type, code and headers to send. */
export class HttpError extends Error {
  /**
   * True once the request's own accounting (metrics and its log line) has covered this error. The server counts and
   * logs every other error as a refusal, so that nothing answered with an error goes unseen.
   */
  accounted = false;

  constructor(
    readonly status: number,
    message: string,
    readonly type = 'invalid_request_error',
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** Marks the error as already counted and logged by whoever throws it. */
  alreadyAccounted(): this {
    this.accounted = true;
    return this;
  }
}
