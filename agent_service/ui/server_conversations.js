// Conversations kept by the service's state store: OpenAI's Conversations API (create,
// retrieve, update the title in `metadata`, delete, list items) plus `ui/conversations`, the
// caller's own list. Each turn sends only the new message with `conversation`: the service
// holds the rest. What only this browser knows about an answer (its trace id, the feedback
// given or still to send) is kept in localStorage next to it.

import { callJson } from './api.js';

const NOTES_PREFIX = 'agent-service.notes.';
const PAGE = 100;

function path(id) {
  return `v1/conversations/${encodeURIComponent(id)}`;
}

function text(content) {
  if (typeof content === 'string') return content;
  return (content ?? []).map((part) => part.text ?? '').join('');
}

/** Earlier turns from the conversation's items: a user message starts each turn. */
export function turnsFrom(items) {
  const turns = [];
  for (const item of items) {
    if (item.type === 'message' && item.role === 'user') {
      const answer = { status: 'completed', items: [], error: null, responseId: '', traceId: '', requestId: '' };
      turns.push({ id: `turn_${turns.length}`, user: text(item.content), answer });
    } else if (turns.length && !(item.type === 'message' && item.role !== 'assistant')) {
      turns[turns.length - 1].answer.items.push(item);
    }
  }
  for (const turn of turns) {
    if (turn.answer.items.length) continue;
    turn.answer.status = 'interrupted';
    turn.answer.note = 'No answer to this message was stored.';
  }
  return turns;
}

// Notes belong to answered turns, in order: the service stores those (and maybe not the
// failed ones, which this browser saw too).
const answered = (turn) => turn.answer.status === 'completed' || turn.answer.status === 'incomplete';

function readNotes(id) {
  try {
    return JSON.parse(localStorage.getItem(NOTES_PREFIX + id) || '[]');
  } catch {
    return [];
  }
}

export class ServerConversations {
  constructor() {
    this.kind = 'server';
  }

  async list() {
    const page = await callJson('ui/conversations');
    return page.data.map((c) => ({ id: c.id, title: c.title || 'New chat', updated: c.updated_at }));
  }

  async create(title) {
    const created = await callJson('v1/conversations', { method: 'POST', body: { metadata: { title } } });
    return { id: created.id, title, created: created.created_at * 1000, turns: [] };
  }

  request(conversation, turn) {
    return { conversation: conversation.id, input: turn.user, store: true };
  }

  async load(id) {
    let conversation;
    try {
      conversation = await callJson(path(id));
    } catch (error) {
      if (error.status === 404) return null;
      throw error;
    }
    const items = [];
    let after = '';
    for (;;) {
      const query = `?order=asc&limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const page = await callJson(`${path(id)}/items${query}`);
      items.push(...page.data);
      if (!page.has_more || !page.data.length) break;
      after = page.last_id || page.data[page.data.length - 1].id;
    }
    const turns = turnsFrom(items);
    const notes = readNotes(id);
    turns.filter(answered).forEach((turn, index) => {
      if (notes[index]) Object.assign(turn.answer, notes[index]);
    });
    return { id, title: conversation.metadata?.title || 'New chat', created: conversation.created_at * 1000, turns };
  }

  /** The service stored the turns; this browser keeps what only it knows about them. */
  async save(conversation) {
    const notes = conversation.turns.filter(answered).map(({ answer }) => ({
      traceId: answer.traceId,
      requestId: answer.requestId,
      feedback: answer.feedback,
      feedbackPending: answer.feedbackPending,
    }));
    localStorage.setItem(NOTES_PREFIX + conversation.id, JSON.stringify(notes));
  }

  async rename(id, title) {
    await callJson(path(id), { method: 'POST', body: { metadata: { title } } });
  }

  async remove(id) {
    await callJson(path(id), { method: 'DELETE' });
    localStorage.removeItem(NOTES_PREFIX + id);
  }
}
