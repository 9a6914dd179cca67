// The language models under test, each built the way its users build it.
//
// - openai-responses / openai-chat: `@ai-sdk/openai` pointed at the service's OpenAI routes
//   (`<root>/v1/responses`, `<root>/v1/chat/completions`).
// - databricks-responses: `@databricks/ai-sdk-provider` configured as the Databricks chatbot
//   (`e2e-chatbot-app-next`) configures it when `API_PROXY` points at an agent app: every
//   request goes to `<root>/invocations`, tool calls are marked as run by the server
//   (`useRemoteToolCalling`), the fetch wrapper asks for the trace id
//   (`x-mlflow-return-trace-id`) and moves the conversation and user ids from two private
//   headers into the body's `context`, and the model is wrapped with the `<think>` reasoning
//   middleware.
// - databricks-chat-agent: the same provider settings, ChatAgent model (`agent/v2/chat`).

import { createOpenAI } from '@ai-sdk/openai';
import { createDatabricksProvider } from '@databricks/ai-sdk-provider';
import { extractReasoningMiddleware, wrapLanguageModel } from 'ai';

// The chatbot passes the conversation and the user to its fetch wrapper in these headers.
export const CONVERSATION_HEADER = 'x-databricks-conversation-id';
export const USER_HEADER = 'x-databricks-user-id';

export const CLIENTS = ['openai-responses', 'openai-chat', 'databricks-responses', 'databricks-chat-agent'];

/** Every request body a client sent, in order (for diagnosing a failed case). */
export const sentBodies = [];

function recordingFetch(inner = fetch) {
  return async (input, init) => {
    if (typeof init?.body === 'string') {
      try {
        sentBodies.push(JSON.parse(init.body));
      } catch {
        sentBodies.push(init.body);
      }
    }
    return inner(input, init);
  };
}

/** The chatbot's fetch wrapper: bearer token, trace id request, context from headers. */
function chatbotFetch(apiProxy) {
  return async (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('Authorization', 'Bearer chatbot-token');
    if (apiProxy) headers.set('x-mlflow-return-trace-id', 'true');
    const conversationId = headers.get(CONVERSATION_HEADER);
    const userId = headers.get(USER_HEADER);
    headers.delete(CONVERSATION_HEADER);
    headers.delete(USER_HEADER);
    let body = init?.body;
    if (conversationId && userId && typeof body === 'string' && apiProxy) {
      const parsed = JSON.parse(body);
      parsed.context = { ...parsed.context, conversation_id: conversationId, user_id: userId };
      body = JSON.stringify(parsed);
    }
    return recordingFetch()(input, { ...init, headers, body });
  };
}

/**
 * The model for `spec.client`. `spec.root` is the service's base URL; `spec.model` the model
 * id the client sends; `spec.use_remote_tool_calling` overrides the chatbot's `true` (a
 * client that runs its own tools needs the provider's default, `false`).
 */
export function languageModel(spec) {
  const modelId = spec.model ?? 'agent';
  switch (spec.client) {
    case 'openai-responses':
      return openai(spec).responses(modelId);
    case 'openai-chat':
      return openai(spec).chat(modelId);
    case 'databricks-responses':
      return withReasoning(databricks(spec).responses(modelId));
    case 'databricks-chat-agent':
      return withReasoning(databricks(spec).chatAgent(modelId));
    default:
      throw new Error(`unknown client ${spec.client}`);
  }
}

function openai(spec) {
  return createOpenAI({ baseURL: `${spec.root}/v1`, apiKey: 'sk-unused', fetch: recordingFetch() });
}

function databricks(spec) {
  const apiProxy = `${spec.root}${spec.path ?? '/invocations'}`;
  return createDatabricksProvider({
    useRemoteToolCalling: spec.use_remote_tool_calling ?? true,
    baseURL: `${spec.root}/serving-endpoints`,
    formatUrl: () => apiProxy,
    fetch: chatbotFetch(apiProxy),
  });
}

function withReasoning(model) {
  return wrapLanguageModel({ model, middleware: [extractReasoningMiddleware({ tagName: 'think' })] });
}
