// Drives one client through one case against a live agent-service and prints what the
// client's user would see, as one JSON object on stdout. The tests (tests/clients/) decide
// whether that is right; this script only reports.
//
// Input: a JSON case on stdin:
//   client   openai-responses | openai-chat | databricks-responses | databricks-chat-agent
//   root     the service's base URL (http://127.0.0.1:<port>)
//   mode     generate (generateText) | stream (streamText) | chatbot (streamText exactly as
//            the Databricks chatbot's /api/chat route calls it, with its generateText fallback)
//   turns    the user's messages, one model call (or tool loop) per turn; later turns carry
//            the earlier answers back as the SDK returns them (`response.messages`)
//   tools    names of client tools to offer (see CLIENT_TOOLS), run by the SDK itself
//   max_steps          model calls per turn (the SDK's tool loop), default 1
//   provider_options   passed to the SDK call as `providerOptions`
//   settings           call settings (temperature, maxOutputTokens, ...)
//   system             a system prompt
//   model              the model id the client sends (default `agent`)
//   conversation_id, user_id   the chatbot's context headers (databricks clients)

import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import { CONVERSATION_HEADER, USER_HEADER, languageModel, sentBodies } from './lib/clients.mjs';

const CLIENT_TOOLS = {
  get_weather: tool({
    description: 'The weather in a city.',
    inputSchema: jsonSchema({
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    }),
    execute: async ({ city }) => `Sunny and 24 degrees in ${city}.`,
  }),
};

/** The trace id in a raw server event, read the way the Databricks chatbot reads it: from
 * `databricks_output` on `response.output_item.done` (Databricks model serving), or from a
 * top-level `trace_id` (MLflow's agent server). */
function traceIdIn(raw) {
  if (raw?.type === 'response.output_item.done') {
    const fromDatabricks = raw?.databricks_output?.trace?.info?.trace_id;
    if (typeof fromDatabricks === 'string') return fromDatabricks;
  }
  return typeof raw?.trace_id === 'string' ? raw.trace_id : null;
}

function describeError(error) {
  if (error == null) return { name: 'null', message: '' };
  if (typeof error !== 'object') return { name: typeof error, message: String(error) };
  return {
    name: error.name ?? error.constructor?.name ?? 'object',
    message: typeof error.message === 'string' ? error.message : JSON.stringify(error),
    status_code: error.statusCode ?? null,
    response_body: error.responseBody ?? null,
    // An error the provider passed through as it came (an SSE error event, say).
    value: error instanceof Error ? null : error,
  };
}

function usageOf(usage) {
  return usage
    ? { input: usage.inputTokens ?? null, output: usage.outputTokens ?? null, total: usage.totalTokens ?? null }
    : null;
}

function callOptions(spec, model, messages) {
  const headers = {};
  if (spec.conversation_id) headers[CONVERSATION_HEADER] = spec.conversation_id;
  if (spec.user_id) headers[USER_HEADER] = spec.user_id;
  const tools = Object.fromEntries((spec.tools ?? []).map((name) => [name, CLIENT_TOOLS[name]]));
  return {
    model,
    messages,
    headers,
    maxRetries: 0,
    ...(spec.system ? { system: spec.system } : {}),
    stopWhen: stepCountIs(spec.max_steps ?? 1),
    ...(spec.tools?.length ? { tools } : {}),
    ...(spec.provider_options ? { providerOptions: spec.provider_options } : {}),
    ...(spec.settings ?? {}),
  };
}

function contentSummary(content) {
  return content.map((part) => {
    const summary = { type: part.type };
    if (part.type === 'text' || part.type === 'reasoning') summary.text = part.text;
    if (part.type === 'tool-call' || part.type === 'tool-result' || part.type === 'tool-error') {
      summary.tool_name = part.toolName;
      summary.tool_call_id = part.toolCallId;
      summary.provider_executed = part.providerExecuted ?? false;
      summary.dynamic = part.dynamic ?? false;
    }
    if (part.type === 'tool-call') summary.input = part.input;
    if (part.type === 'tool-result') summary.output = part.output;
    if (part.type === 'tool-error') summary.error = describeError(part.error);
    return summary;
  });
}

async function generate(spec, model, messages) {
  const result = await generateText(callOptions(spec, model, messages));
  return {
    answer: {
      text: result.text,
      finish_reason: result.finishReason,
      usage: usageOf(result.totalUsage),
      steps: result.steps.length,
      content: result.steps.flatMap((step) => contentSummary(step.content)),
      response_headers: result.response.headers ?? {},
      // The chatbot's fallback reads the trace id from the body's metadata.
      body_trace_id: result.response.body?.metadata?.trace_id ?? null,
    },
    messages: result.response.messages,
  };
}

async function stream(spec, model, messages) {
  const errors = [];
  const parts = [];
  let text = '';
  let finishReason = null;
  let usage = null;
  let streamTraceId = null;
  const result = streamText({
    ...callOptions(spec, model, messages),
    includeRawChunks: true,
    onError: () => {},
  });
  for await (const part of result.fullStream) {
    if (part.type === 'raw') {
      streamTraceId ??= traceIdIn(part.rawValue);
      continue;
    }
    parts.push(part.type);
    if (part.type === 'text-delta') text += part.text;
    if (part.type === 'error') errors.push(describeError(part.error));
    if (part.type === 'finish') {
      finishReason = part.finishReason;
      usage = usageOf(part.totalUsage);
    }
  }
  const steps = errors.length ? [] : await result.steps;
  const response = errors.length ? null : await result.response;
  return {
    answer: {
      text,
      finish_reason: finishReason,
      usage,
      errors,
      parts: collapse(parts),
      steps: steps.length,
      content: steps.flatMap((step) => contentSummary(step.content)),
      response_headers: response?.headers ?? {},
      stream_trace_id: streamTraceId,
    },
    messages: response?.messages ?? [],
  };
}

/** The chatbot's POST /api/chat: streamText with the trace requested and raw chunks on,
 * the trace id read from the raw events as the chatbot reads it, the UI message stream
 * drained as the chatbot drains it, and its generateText fallback when the stream fails
 * before any text. */
async function chatbot(spec, model, messages) {
  let traceId = null;
  const headers = {};
  if (spec.conversation_id) headers[CONVERSATION_HEADER] = spec.conversation_id;
  if (spec.user_id) headers[USER_HEADER] = spec.user_id;
  const result = streamText({
    model,
    messages,
    providerOptions: { databricks: { includeTrace: true } },
    includeRawChunks: true,
    headers,
    maxRetries: 0,
    onChunk: ({ chunk }) => {
      if (chunk.type === 'raw') traceId ??= traceIdIn(chunk.rawValue);
    },
  });
  const chunks = [];
  const errors = [];
  let text = '';
  let sawText = false;
  let fellBack = false;
  const ui = result.toUIMessageStream({
    sendReasoning: true,
    sendSources: true,
    sendFinish: false,
    onError: (error) => (error instanceof Error ? error.message : String(error)),
  });
  for await (const chunk of ui) {
    if (chunk.type === 'error') {
      errors.push({ name: 'ui-error', message: chunk.errorText });
      if (!sawText) {
        fellBack = true;
        break;
      }
      continue;
    }
    chunks.push(chunk.type);
    if (chunk.type.startsWith('text-')) sawText = true;
    if (chunk.type === 'text-delta') text += chunk.delta;
  }
  let fallback = null;
  if (fellBack) {
    try {
      const generated = await generateText({ model, messages, headers, maxRetries: 0 });
      fallback = { text: generated.text, error: null };
      text = generated.text;
      traceId = generated.response?.body?.metadata?.trace_id ?? null;
    } catch (error) {
      fallback = { text: null, error: describeError(error) };
    }
  }
  // The next turn carries this answer back, as the chatbot's history does.
  const history = fellBack || errors.length ? [] : (await result.response).messages;
  return {
    answer: { text, errors, ui_chunks: collapse(chunks), trace_id: traceId, fallback },
    messages: fellBack ? [{ role: 'assistant', content: text }] : history,
  };
}

/** ['text-delta', 'text-delta', 'finish'] → ['text-delta*', 'finish']: readable, still exact
 * about the order of kinds. */
function collapse(kinds) {
  const out = [];
  for (const kind of kinds) {
    const last = out.at(-1);
    if (last === kind || last === `${kind}*`) out[out.length - 1] = `${kind}*`;
    else out.push(kind);
  }
  return out;
}

const MODES = { generate, stream, chatbot };

async function main() {
  let input = '';
  for await (const piece of process.stdin) input += piece;
  const spec = JSON.parse(input);
  const model = languageModel(spec);
  const mode = MODES[spec.mode];
  if (!mode) throw new Error(`unknown mode ${spec.mode}`);
  const answers = [];
  let messages = [];
  let error = null;
  for (const turn of spec.turns) {
    messages = [...messages, { role: 'user', content: turn }];
    try {
      const { answer, messages: answerMessages } = await mode(spec, model, messages);
      answers.push(answer);
      messages = [...messages, ...answerMessages];
    } catch (thrown) {
      error = describeError(thrown);
      break;
    }
  }
  process.stdout.write(`${JSON.stringify({ answers, error, sent: sentBodies })}\n`);
}

await main();
