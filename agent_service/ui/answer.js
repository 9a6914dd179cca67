// One answer of the agent: the Responses output items it is made of (messages, tool calls and
// their results, MCP calls, reasoning), kept up to date from stream events and drawn into the
// page. The same state is what a conversation stores and sends back as history.

import { renderMarkdown } from './markdown.js';

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Arguments and results are JSON more often than not: show them indented when they are. */
function pretty(text) {
  if (typeof text !== 'string') return JSON.stringify(text, null, 2) ?? '';
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** The answer's state: {status, items, error, responseId, traceId, requestId}. */
export function emptyAnswer(requestId = '') {
  return { status: 'in_progress', items: [], error: null, responseId: '', traceId: '', requestId };
}

function itemById(answer, event) {
  if (Number.isInteger(event.output_index) && answer.items[event.output_index]) return answer.items[event.output_index];
  return answer.items.find((item) => item && item.id === event.item_id);
}

function part(list, index, type) {
  while (list.length <= index) list.push({ type, text: '' });
  return list[index];
}

/** Applies one Responses stream event to `answer` (mutates it). */
export function applyEvent(answer, event) {
  const item = itemById(answer, event);
  switch (event.type) {
    case 'response.created':
    case 'response.in_progress':
    case 'response.queued':
      answer.responseId = event.response?.id || answer.responseId;
      break;
    case 'response.output_item.added':
    case 'response.output_item.done':
      answer.items[event.output_index ?? answer.items.length] = structuredClone(event.item);
      break;
    case 'response.content_part.added':
      if (item) part(item.content ??= [], event.content_index ?? 0, 'output_text');
      break;
    case 'response.output_text.delta':
      if (item) part(item.content ??= [], event.content_index ?? 0, 'output_text').text += event.delta ?? '';
      break;
    case 'response.output_text.done':
      if (item) part(item.content ??= [], event.content_index ?? 0, 'output_text').text = event.text ?? '';
      break;
    case 'response.refusal.delta':
      if (item) part(item.content ??= [], event.content_index ?? 0, 'refusal').refusal = (item.content[event.content_index ?? 0].refusal ?? '') + (event.delta ?? '');
      break;
    case 'response.function_call_arguments.delta':
    case 'response.mcp_call_arguments.delta':
      if (item) item.arguments = (item.arguments ?? '') + (event.delta ?? '');
      break;
    case 'response.function_call_arguments.done':
    case 'response.mcp_call_arguments.done':
      if (item) item.arguments = event.arguments ?? item.arguments;
      break;
    case 'response.reasoning_summary_part.added':
      if (item) part(item.summary ??= [], event.summary_index ?? 0, 'summary_text');
      break;
    case 'response.reasoning_summary_text.delta':
      if (item) part(item.summary ??= [], event.summary_index ?? 0, 'summary_text').text += event.delta ?? '';
      break;
    case 'response.reasoning_summary_text.done':
      if (item) part(item.summary ??= [], event.summary_index ?? 0, 'summary_text').text = event.text ?? '';
      break;
    case 'response.reasoning_text.delta':
      if (item) part(item.content ??= [], event.content_index ?? 0, 'reasoning_text').text += event.delta ?? '';
      break;
    case 'response.reasoning_text.done':
      if (item) part(item.content ??= [], event.content_index ?? 0, 'reasoning_text').text = event.text ?? '';
      break;
    case 'response.completed':
    case 'response.incomplete':
    case 'response.failed':
    case 'response.cancelled':
      finish(answer, event.response ?? {});
      break;
    case 'error':
      answer.status = 'failed';
      answer.error = {
        message: event.message ?? event.error?.message ?? 'The agent failed.',
        code: event.code ?? event.error?.code ?? null,
        requestId: answer.requestId,
      };
      break;
    default:
      break;
  }
}

function finish(answer, response) {
  answer.responseId = response.id || answer.responseId;
  answer.status = response.status || 'completed';
  if (Array.isArray(response.output) && response.output.length) answer.items = structuredClone(response.output);
  answer.traceId = response.metadata?.trace_id || answer.traceId;
  if (response.status === 'failed' && !answer.error) {
    answer.error = {
      message: response.error?.message ?? 'The agent failed.',
      code: response.error?.code ?? null,
      requestId: answer.requestId,
    };
  }
  if (response.status === 'incomplete') {
    answer.note = `The answer is incomplete (${response.incomplete_details?.reason ?? 'unknown reason'}).`;
  }
}

/** The text of a message item. */
export function messageText(item) {
  return (item.content ?? []).map((p) => p.text ?? p.refusal ?? '').join('');
}

/** Draws `answer` into `container`, replacing what was there; cheap enough to run per frame.
 * Tool calls and reasoning the reader opened stay open. */
export function drawAnswer(container, answer) {
  const open = new Set(Array.from(container.querySelectorAll('details[open]'), (d) => d.dataset.key));
  const outputs = new Map();
  for (const item of answer.items) {
    if (item?.type === 'function_call_output') outputs.set(item.call_id, item);
  }
  const nodes = [];
  const shown = new Set();
  answer.items.forEach((item, index) => {
    const node = itemNode(item, outputs, shown);
    if (!node) return;
    if (node.tagName === 'DETAILS') {
      node.dataset.key = String(index);
      node.open = open.has(node.dataset.key);
    }
    nodes.push(node);
  });
  if (answer.status === 'in_progress' && !nodes.length) nodes.push(el('div', 'thinking', 'Thinking…'));
  container.replaceChildren(...nodes);
}

function itemNode(item, outputs, shown) {
  switch (item?.type) {
    case 'message': {
      const text = messageText(item);
      if (!text) return null;
      const node = el('div', 'markdown');
      node.append(renderMarkdown(text));
      node.querySelectorAll('.code-block').forEach(addCopyButton);
      return node;
    }
    case 'function_call': {
      const output = outputs.get(item.call_id);
      if (output) shown.add(item.call_id);
      return toolCall(item.name, item.arguments, output?.output, toolState(item, output));
    }
    case 'function_call_output':
      return shown.has(item.call_id) ? null : toolCall('tool result', null, item.output, 'done');
    case 'mcp_call': {
      const name = item.server_label ? `${item.server_label}.${item.name}` : item.name;
      const running = item.status === 'in_progress' || item.status === 'calling';
      const state = item.error ? 'failed' : running ? 'running' : 'done';
      return toolCall(name, item.arguments, item.error ?? item.output, state);
    }
    case 'reasoning': {
      const parts = [...(item.summary ?? []), ...(item.content ?? [])];
      const text = parts.map((p) => p.text ?? '').filter(Boolean).join('\n\n');
      return text ? reasoning(text) : null;
    }
    default:
      return null;
  }
}

/** A Copy button on a code block, where the browser lets pages write the clipboard. */
function addCopyButton(block) {
  if (!navigator.clipboard) return;
  const button = el('button', 'small copy', 'Copy');
  button.type = 'button';
  button.setAttribute('aria-label', 'Copy the code');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(block.querySelector('code').textContent);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed';
    }
  });
  block.append(button);
}

function toolState(call, output) {
  if (output) return 'done';
  return call.status === 'completed' ? 'called' : 'running';
}

const STATE_LABEL = { running: 'running…', called: 'called', done: 'done', failed: 'failed' };

function toolCall(name, args, result, state) {
  const details = el('details', `tool tool-${state}`);
  const summary = el('summary');
  summary.append(el('span', 'tool-label', 'Tool'), el('span', 'tool-name', name ?? ''), el('span', 'tool-state', STATE_LABEL[state]));
  details.append(summary);
  if (args !== null && args !== undefined) {
    details.append(el('div', 'tool-heading', 'Arguments'), el('pre', 'tool-arguments', pretty(args)));
  }
  if (result !== null && result !== undefined) {
    details.append(el('div', 'tool-heading', state === 'failed' ? 'Error' : 'Result'), el('pre', 'tool-result', pretty(result)));
  }
  return details;
}

function reasoning(text) {
  const details = el('details', 'reasoning');
  details.append(el('summary', null, 'Reasoning'));
  const body = el('div', 'markdown');
  body.append(renderMarkdown(text));
  details.append(body);
  return details;
}
