import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IErrorBody } from './tokens';

/** The route prefix of the tablevault server extension, below the server's base URL. */
const API_PATH = 'tablevault/api';

/**
 * An error answer from the tablevault API.
 *
 * Its message is the server's own `message`; `reason` is kept apart so the panel can show
 * the short message and still offer the detail.
 */
export class APIError extends ServerConnection.ResponseError {
  constructor(response: Response, body: Partial<IErrorBody>) {
    super(response, body.message || APIError.fallbackMessage(response));
    this.name = 'APIError';
    this.reason = body.reason ?? null;
  }

  /** The server's optional explanation, or null. */
  readonly reason: string | null;

  /** The HTTP status code of the answer. */
  get status(): number {
    return this.response.status;
  }

  private static fallbackMessage(response: Response): string {
    return `The server answered ${response.status} ${response.statusText}`.trim();
  }
}

/**
 * Call the tablevault API and return its JSON answer.
 *
 * @param path - Route below `tablevault/api/`, with any name already URI-encoded.
 * @param init - Fetch options; a POST should carry its JSON body here.
 * @param settings - Server settings; the default ones send the XSRF token and the auth token.
 * @returns The decoded JSON body.
 * @throws {ServerConnection.NetworkError} When the server cannot be reached.
 * @throws {APIError} When the server answers with an error status.
 */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_PATH, path);

  const response = await ServerConnection.makeRequest(url, init, settings);

  const text = await response.text();
  let body: unknown = null;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch (error) {
      if (response.ok) {
        throw new APIError(response, { message: `The server sent invalid JSON: ${error}` });
      }
    }
  }
  if (!response.ok) {
    throw new APIError(response, isErrorBody(body) ? body : {});
  }
  return body as T;
}

function isErrorBody(body: unknown): body is Partial<IErrorBody> {
  return typeof body === 'object' && body !== null && 'message' in body;
}
