// Talking to the service: relative URLs (the page works under any proxy prefix), the API key
// of this tab, request ids the page chooses so every error can name one, OpenAI's error envelope.

import { readEvents } from './sse.js';

const KEY_STORAGE = 'agent-service.api-key';

/** The error of a failed call, as the service reported it. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, type = null, requestId = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.type = type;
    this.requestId = requestId;
  }
}

/** The service's message without the "(request id: …)" it ends with: the page shows the id
 * on its own, once. */
export function withoutRequestId(message, requestId) {
  return requestId ? message.replace(` (request id: ${requestId})`, '') : message;
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** A fresh request id: 32 hex digits (crypto.randomUUID needs a secure context; this does not). */
export function newRequestId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function headers(requestId, extra = {}) {
  const result = { 'X-Request-Id': requestId, ...extra };
  const key = apiKey();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

/** The ApiError for a non-2xx answer, from its JSON envelope when it has one. */
async function failure(response, requestId) {
  const id = response.headers.get('X-Request-Id') || requestId;
  let error = null;
  try {
    error = (await response.json()).error;
  } catch {
    // Not our envelope (a proxy's HTML page, say): the status is all there is.
  }
  const message = (error && typeof error.message === 'string' && error.message)
    || `The service answered ${response.status} ${response.statusText}`.trim();
  return new ApiError(message, {
    status: response.status,
    code: error?.code ?? null,
    type: error?.type ?? null,
    requestId: id,
  });
}

async function send(path, { method = 'GET', body, signal, requestId = newRequestId(), extraHeaders } = {}) {
  const init = { method, signal, headers: headers(requestId, extraHeaders), credentials: 'same-origin' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError('The service could not be reached.', { code: 'network_error', requestId });
  }
  if (!response.ok) throw await failure(response, requestId);
  return { response, requestId: response.headers.get('X-Request-Id') || requestId };
}

/** A JSON call; resolves to the parsed body (null for 204). */
export async function callJson(path, options = {}) {
  const { response } = await send(path, options);
  return response.status === 204 ? null : response.json();
}

/**
 * Starts a streamed Responses call. Resolves once the headers arrived (a refusal before the
 * stream throws ApiError) to {requestId, traceId, events}: an async iterator of parsed events.
 */
export async function streamResponse(body, { signal, requestId = newRequestId() } = {}) {
  const { response, requestId: id } = await send('v1/responses', {
    method: 'POST',
    body: { ...body, stream: true },
    signal,
    requestId,
    // Ask for the trace id in the body too (metadata.trace_id), for feedback.
    extraHeaders: { 'x-mlflow-return-trace-id': 'true', Accept: 'text/event-stream' },
  });
  async function* events() {
    for await (const frame of readEvents(response.body, signal)) {
      if (frame.data === '[DONE]') return;
      let parsed;
      try {
        parsed = JSON.parse(frame.data);
      } catch {
        throw new ApiError('The service sent an event that is not JSON.', { code: 'bad_event', requestId: id });
      }
      yield parsed;
    }
  }
  return { requestId: id, traceId: response.headers.get('x-mlflow-trace-id') || '', events: events() };
}
