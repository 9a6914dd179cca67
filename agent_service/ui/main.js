// The chat page: wires the composer, the conversation log, the sidebar and the API together.

import { ApiError, callJson, newRequestId, setApiKey, streamResponse, withoutRequestId } from './api.js';
import { applyEvent, drawAnswer, emptyAnswer } from './answer.js';
import { LocalConversations, newId, titleFrom } from './conversations.js';
import { ServerConversations } from './server_conversations.js';
import { feedbackBar } from './feedback.js';
import { drawSidebar } from './sidebar.js';

const $ = (id) => document.getElementById(id);
const page = {
  app: $('app'),
  log: $('log'),
  empty: $('empty'),
  prompt: $('prompt'),
  composer: $('composer'),
  send: $('send'),
  stop: $('stop'),
  list: $('conversation-list'),
  newChat: $('new-chat'),
  toggle: $('toggle-sidebar'),
  agentName: $('agent-name'),
  user: $('user'),
  keyButton: $('key-button'),
  keyDialog: $('key-dialog'),
  keyInput: $('key-input'),
  keyReason: $('key-reason'),
  storageNote: $('storage-note'),
  status: $('status'),
};

const DEFAULT_SESSION = { agent: { name: 'Agent' }, user: null, feedback: false, trace_url: null };

const state = {
  session: DEFAULT_SESSION,
  store: new LocalConversations(),
  conversation: null,
  // The turn being answered: {turn, controller, view}.
  running: null,
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function announce(text) {
  page.status.textContent = text;
}

// ---- API key ----

/** Asks for the API key in a modal dialog; resolves to true when one was entered. */
function askKey(reason) {
  page.keyReason.textContent = reason || 'This service needs an API key.';
  page.keyInput.value = '';
  page.keyDialog.showModal();
  return new Promise((resolve) => {
    page.keyDialog.addEventListener('close', () => {
      const key = page.keyInput.value.trim();
      const entered = page.keyDialog.returnValue === 'ok' && Boolean(key);
      if (entered) setApiKey(key);
      page.keyButton.hidden = entered;
      resolve(entered);
    }, { once: true });
  });
}

async function loadSession() {
  for (;;) {
    try {
      return { ...DEFAULT_SESSION, ...(await callJson('ui/session')) };
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        if (await askKey(error.message)) continue;
        page.keyButton.hidden = false;
        return DEFAULT_SESSION;
      }
      announce(`Could not load the session: ${error.message}`);
      return DEFAULT_SESSION;
    }
  }
}

function showSession(session) {
  const name = session.agent?.name || 'Agent';
  page.agentName.textContent = name;
  document.title = name;
  const user = session.user;
  page.user.textContent = user ? (user.email || user.name) : '';
  page.user.hidden = !user;
}

// ---- the conversation log ----

function turnNode(turn) {
  const article = el('article', 'turn');
  article.dataset.turnId = turn.id;
  if (turn.answer.status !== 'in_progress') article.dataset.status = turn.answer.status;
  const question = el('div', 'user-message');
  question.append(el('div', 'bubble', turn.user));
  const assistant = el('div', 'assistant');
  const body = el('div', 'answer-body');
  const footer = el('div', 'answer-footer');
  assistant.append(body, footer);
  article.append(question, assistant);
  drawAnswer(body, turn.answer);
  drawFooter(footer, turn);
  return article;
}

function viewOf(turn) {
  const article = page.log.querySelector(`[data-turn-id="${turn.id}"]`);
  return article && { body: article.querySelector('.answer-body'), footer: article.querySelector('.answer-footer'), article };
}

function drawFooter(footer, turn) {
  const answer = turn.answer;
  const parts = [];
  if (answer.status === 'stopped') parts.push(el('p', 'note', 'Stopped.'));
  if (answer.note) parts.push(el('p', 'note', answer.note));
  if (answer.error) parts.push(errorNode(turn));
  const done = answer.status === 'completed' || answer.status === 'incomplete';
  if (done && answer.traceId && state.session.feedback) {
    const conversation = state.conversation;
    parts.push(feedbackBar(answer, state.session, () => saveConversation(conversation)));
  }
  footer.replaceChildren(...parts);
}

function errorNode(turn) {
  const { error } = turn.answer;
  const box = el('div', 'error');
  box.setAttribute('role', 'alert');
  // The request id is shown on its own line.
  box.append(el('p', 'error-message', withoutRequestId(error.message, error.requestId)));
  const details = [];
  if (error.code) details.push(`code ${error.code}`);
  if (error.requestId) details.push(`request id ${error.requestId}`);
  if (details.length) box.append(el('p', 'error-details', details.join(' · ')));
  const actions = el('div', 'error-actions');
  if (error.status === 401) {
    const key = el('button', 'small', 'Enter API key');
    key.type = 'button';
    key.addEventListener('click', async () => {
      if (await askKey()) retry(turn);
    });
    actions.append(key);
  }
  const again = el('button', 'small retry', 'Retry');
  again.type = 'button';
  again.addEventListener('click', () => retry(turn));
  actions.append(again);
  box.append(actions);
  return box;
}

function showConversation(conversation) {
  state.conversation = conversation;
  const turns = conversation ? conversation.turns : [];
  page.log.replaceChildren(...turns.map(turnNode));
  page.empty.hidden = turns.length > 0;
  page.log.scrollTop = page.log.scrollHeight;
}

/** A problem outside any answer (a conversation that could not be created, loaded…). */
function showNotice(message, requestId) {
  const box = el('div', 'error notice');
  box.setAttribute('role', 'alert');
  box.append(el('p', 'error-message', withoutRequestId(message, requestId)));
  if (requestId) box.append(el('p', 'error-details', `request id ${requestId}`));
  page.empty.hidden = true;
  page.log.append(box);
}

// ---- sending, stopping, retrying ----

function setBusy(busy) {
  page.send.hidden = busy;
  page.stop.hidden = !busy;
  page.log.setAttribute('aria-busy', String(busy));
}

function nearBottom() {
  return page.log.scrollHeight - page.log.scrollTop - page.log.clientHeight < 80;
}

async function send(text) {
  if (state.running || !text.trim()) return;
  if (!state.conversation) {
    try {
      state.conversation = await state.store.create(titleFrom(text));
    } catch (error) {
      showNotice(`Could not start a conversation: ${error.message}`, error.requestId);
      page.prompt.value = text;
      return;
    }
    history.replaceState(null, '', `#${state.conversation.id}`);
  }
  const turn = { id: newId('turn_'), user: text, answer: emptyAnswer() };
  state.conversation.turns.push(turn);
  page.empty.hidden = true;
  page.log.append(turnNode(turn));
  page.log.scrollTop = page.log.scrollHeight;
  await answerTurn(turn);
}

async function answerTurn(turn) {
  const conversation = state.conversation;
  const controller = new AbortController();
  const answer = (turn.answer = emptyAnswer(newRequestId()));
  state.running = { turn, controller };
  setBusy(true);
  announce('The agent is answering…');
  // Kept from the start: a reload mid-answer still has the question (see `interrupted`).
  saveConversation(conversation);
  let frame = 0;
  const redraw = () => {
    frame = 0;
    const view = viewOf(turn);
    if (!view) return;
    const follow = nearBottom();
    drawAnswer(view.body, answer);
    if (follow) page.log.scrollTop = page.log.scrollHeight;
  };
  try {
    const stream = await streamResponse(
      state.store.request(conversation, turn),
      { signal: controller.signal, requestId: answer.requestId },
    );
    answer.requestId = stream.requestId;
    answer.traceId = stream.traceId;
    for await (const event of stream.events) {
      applyEvent(answer, event);
      frame ||= requestAnimationFrame(redraw);
    }
    if (controller.signal.aborted) answer.status = 'stopped';
    else if (answer.status === 'in_progress') {
      // The stream ended without its terminal event: never show a cut answer as complete.
      answer.status = 'failed';
      answer.error = { message: 'The answer was cut off: the stream ended early.', code: 'stream_truncated', requestId: answer.requestId };
    }
  } catch (error) {
    if (controller.signal.aborted) answer.status = 'stopped';
    else {
      answer.status = 'failed';
      answer.error = error instanceof ApiError
        ? { message: error.message, code: error.code, requestId: error.requestId || answer.requestId, status: error.status }
        : { message: 'The connection to the service was lost before the answer was complete.', code: 'network_error', requestId: answer.requestId };
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
    state.running = null;
    setBusy(false);
  }
  const view = viewOf(turn);
  if (view) {
    drawAnswer(view.body, answer);
    drawFooter(view.footer, turn);
    view.article.dataset.status = answer.status;
  }
  announce(answer.status === 'completed' ? 'Answer complete.' : answer.status === 'stopped' ? 'Stopped.' : answer.error ? `Error: ${answer.error.message}` : '');
  await saveConversation(conversation);
}

function stop() {
  state.running?.controller.abort();
}

async function retry(turn) {
  if (state.running) return;
  const view = viewOf(turn);
  turn.answer = emptyAnswer();
  if (view) {
    drawAnswer(view.body, turn.answer);
    drawFooter(view.footer, turn);
    delete view.article.dataset.status;
  }
  await answerTurn(turn);
}

// ---- conversations ----

/** Stores `conversation` (by default the one on screen) and redraws the sidebar. */
async function saveConversation(conversation = state.conversation) {
  if (!conversation) return;
  try {
    await state.store.save(conversation);
  } catch {
    announce('This conversation could not be saved: the browser storage is full. Delete old conversations.');
  }
  await refreshSidebar();
}

let sidebarRound = 0;

async function refreshSidebar() {
  const round = ++sidebarRound;
  let conversations = [];
  try {
    conversations = await state.store.list();
  } catch (error) {
    announce(`Could not list the conversations: ${error.message}`);
  }
  // Only the latest list is drawn, and never over a title being edited (its own end
  // refreshes the list).
  if (round !== sidebarRound || page.list.querySelector('.rename-form')) return;
  drawSidebar(page.list, conversations, state.conversation?.id, {
    open: (id) => { location.hash = id; closeSidebarOnPhone(); },
    rename: async (id, title) => {
      try {
        await state.store.rename(id, title);
        if (state.conversation?.id === id) state.conversation.title = title;
      } catch (error) {
        showNotice(`Could not rename the conversation: ${error.message}`, error.requestId);
      }
      await refreshSidebar();
    },
    remove: async (id) => {
      try {
        await state.store.remove(id);
      } catch (error) {
        showNotice(`Could not delete the conversation: ${error.message}`, error.requestId);
        return;
      }
      if (state.conversation?.id === id) newChat();
      else await refreshSidebar();
    },
  });
}

async function openFromHash() {
  const id = decodeURIComponent(location.hash.slice(1));
  if (state.conversation && state.conversation.id === id) return;
  stop();
  let conversation = null;
  try {
    conversation = id ? await state.store.load(id) : null;
  } catch (error) {
    showConversation(null);
    showNotice(`Could not open the conversation: ${error.message}`, error.requestId);
    return;
  }
  conversation?.turns.forEach(interrupted);
  showConversation(conversation);
  if (id && !conversation) history.replaceState(null, '', location.pathname + location.search);
  await refreshSidebar();
}

/** An answer stored while it was streaming was cut by a reload or a closed tab. */
function interrupted(turn) {
  if (turn.answer.status !== 'in_progress') return;
  turn.answer.status = 'interrupted';
  turn.answer.note = 'The page was closed or reloaded before the answer was complete.';
}

function newChat() {
  stop();
  history.replaceState(null, '', location.pathname + location.search);
  showConversation(null);
  refreshSidebar();
  closeSidebarOnPhone();
  page.prompt.focus();
}

function closeSidebarOnPhone() {
  page.app.classList.remove('sidebar-open');
  page.toggle.setAttribute('aria-expanded', 'false');
}

// ---- wiring ----

function wire() {
  page.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = page.prompt.value;
    if (state.running || !text.trim()) return;
    page.prompt.value = '';
    send(text);
  });
  page.prompt.addEventListener('keydown', (event) => {
    // Enter sends, Shift+Enter is a new line (and so is Enter while an IME composes).
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      page.composer.requestSubmit();
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.running && !page.keyDialog.open) stop();
  });
  page.stop.addEventListener('click', stop);
  page.newChat.addEventListener('click', newChat);
  page.toggle.addEventListener('click', () => {
    const open = page.app.classList.toggle('sidebar-open');
    page.toggle.setAttribute('aria-expanded', String(open));
  });
  page.keyButton.addEventListener('click', async () => {
    if (await askKey()) showSession((state.session = await loadSession()));
  });
  window.addEventListener('hashchange', openFromHash);
}

async function boot() {
  wire();
  state.session = await loadSession();
  showSession(state.session);
  if (state.session.conversations === 'server') {
    state.store = new ServerConversations();
    page.storageNote.textContent = 'Conversations are kept by the service.';
  }
  await openFromHash();
  page.app.dataset.ready = 'true';
  page.prompt.focus();
}

boot();
