// Conversations kept in this browser (localStorage): an index of {id, title, updated} and one
// entry per conversation holding its turns. A turn is {id, user, answer} where `answer` is the
// state answer.js keeps. `historyInput` turns them back into Responses input items: the whole
// conversation goes with every turn. (server_conversations.js is the same interface over the
// service's state store.)

import { messageText } from './answer.js';

const INDEX_KEY = 'agent-service.conversations';
const ENTRY_PREFIX = 'agent-service.conversation.';
const TITLE_LENGTH = 60;

export function newId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A title from the first message: its first line, cut at a word near TITLE_LENGTH. */
export function titleFrom(text) {
  const line = text.trim().split('\n')[0].trim();
  if (line.length <= TITLE_LENGTH) return line || 'New chat';
  const cut = line.slice(0, TITLE_LENGTH);
  const space = cut.lastIndexOf(' ');
  return `${space > TITLE_LENGTH / 2 ? cut.slice(0, space) : cut}…`;
}

function readJson(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

export class LocalConversations {
  constructor() {
    this.kind = 'browser';
  }

  /** A new, empty conversation (stored with its first turn). */
  async create(title) {
    return { id: newId('conv_'), title, created: Date.now(), turns: [] };
  }

  /** The Responses request body (less `stream`) that answers `turn` of `conversation`. */
  request(conversation, turn) {
    const earlier = conversation.turns.slice(0, conversation.turns.indexOf(turn));
    // The whole conversation goes with every turn: nothing to store on the server.
    return { input: historyInput(earlier, turn.user), store: false };
  }

  async list() {
    const index = readJson(INDEX_KEY, []);
    return Array.isArray(index) ? [...index].sort((a, b) => b.updated - a.updated) : [];
  }

  async load(id) {
    const entry = readJson(ENTRY_PREFIX + id, null);
    return entry && Array.isArray(entry.turns) ? entry : null;
  }

  /** Stores the conversation; throws when the browser's storage is full. */
  async save(conversation) {
    conversation.updated = Date.now();
    localStorage.setItem(ENTRY_PREFIX + conversation.id, JSON.stringify(conversation));
    const index = (await this.list()).filter((c) => c.id !== conversation.id);
    index.push({ id: conversation.id, title: conversation.title, updated: conversation.updated });
    localStorage.setItem(INDEX_KEY, JSON.stringify(index));
  }

  async rename(id, title) {
    const conversation = await this.load(id);
    if (!conversation) return;
    conversation.title = title;
    await this.save(conversation);
  }

  async remove(id) {
    localStorage.removeItem(ENTRY_PREFIX + id);
    const index = (await this.list()).filter((c) => c.id !== id);
    localStorage.setItem(INDEX_KEY, JSON.stringify(index));
  }
}

/**
 * The Responses input for the next turn: every earlier turn's user message and what the agent
 * answered (its messages, and the tool calls it completed with their results), then `text`.
 * The agent's MCP calls go back as function calls with their outputs (the request schema
 * takes those); reasoning stays out. Failed answers are left out; stopped ones keep what was
 * shown.
 */
export function historyInput(turns, text) {
  const input = [];
  for (const turn of turns) {
    input.push({ type: 'message', role: 'user', content: turn.user });
    if (turn.answer.status === 'failed') continue;
    const items = turn.answer.items.filter(Boolean);
    const called = new Set(items.filter((i) => i.type === 'function_call').map((i) => i.call_id));
    const answered = new Set(items.filter((i) => i.type === 'function_call_output').map((i) => i.call_id));
    for (const item of items) {
      if (item.type === 'message') {
        const said = messageText(item);
        if (said) input.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: said }] });
      } else if (item.type === 'function_call' && answered.has(item.call_id)) {
        input.push({ type: 'function_call', call_id: item.call_id, name: item.name, arguments: item.arguments ?? '' });
      } else if (item.type === 'function_call_output' && called.has(item.call_id)) {
        input.push({ type: 'function_call_output', call_id: item.call_id, output: String(item.output ?? '') });
      } else if (item.type === 'mcp_call' && item.status !== 'in_progress' && item.status !== 'calling') {
        input.push({ type: 'function_call', call_id: item.id, name: item.name, arguments: item.arguments || '{}' });
        input.push({ type: 'function_call_output', call_id: item.id, output: String(item.output ?? item.error ?? '') });
      }
    }
  }
  input.push({ type: 'message', role: 'user', content: text });
  return input;
}
