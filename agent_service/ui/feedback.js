// Thumbs up/down and an optional comment on an answer, recorded by the service as MLflow
// feedback on the answer's trace; and a link to the trace when the tracking server has a UI.
//
// A click is never lost. The thumb shows pressed at once and the choice is kept with the
// conversation (`answer.feedbackPending`) until the service has recorded it. An answer's
// trace reaches the store a moment after the answer (another process writes traces in
// batches); the service waits a few seconds for it, and while it still cannot find it the
// page asks again after longer and longer pauses, and again when the page shows the answer
// after a reload. Per trace one request at a time, always of the latest choice, named by a
// key the service records it under (`idempotency_key`): a choice is recorded once however
// often it is sent, and each change replaces the one before (`assessment_id`).

import { callJson, newRequestId, withoutRequestId } from './api.js';

// Pauses before asking again; the service itself waits up to 5 s on each try (ui.py).
const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 15000];

// One sender per trace, shared by every bar drawn for it (an answer drawn again, a
// conversation opened again).
const senders = new Map();

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const same = (a, b) => Boolean(a && b) && a.rating === b.rating && (a.comment || '') === (b.comment || '');

/** Worth asking again: the trace is not stored yet, or the service or the network failed
 * on the way (not: bad request, no key, tracing off). */
function retryable(error) {
  if (error.code === 'feedback_unavailable') return false;
  return error.status === 0 || error.status === 404 || error.status === 408 || error.status === 429 || error.status >= 500;
}

function senderFor(answer, onChange) {
  let sender = senders.get(answer.traceId);
  if (!sender) {
    sender = { answer, onChange, status: '', running: false, redraws: new Set() };
    senders.set(answer.traceId, sender);
  } else if (sender.answer !== answer) {
    // The same answer drawn from a fresh copy: what this page knows is newer than the copy.
    answer.feedback = sender.answer.feedback;
    answer.feedbackPending = sender.answer.feedbackPending;
    Object.assign(sender, { answer, onChange });
  }
  return sender;
}

function changed(sender, status, { save = false } = {}) {
  sender.status = status;
  if (save) sender.onChange();
  for (const redraw of sender.redraws) redraw();
}

/** Sends the latest choice until it is recorded or cannot be; one loop per trace. */
async function deliver(sender) {
  if (sender.running) return;
  sender.running = true;
  let attempt = 0;
  let previous = null;
  try {
    for (;;) {
      const { answer } = sender;
      const wanted = answer.feedbackPending;
      if (!wanted) break;
      if (wanted !== previous) attempt = 0; // a new choice gets every try again
      previous = wanted;
      if (same(wanted, answer.feedback)) {
        // Changed back to what is recorded before it was sent: nothing to send.
        answer.feedbackPending = null;
        changed(sender, '', { save: true });
        continue;
      }
      // The same key on every try: the service records the choice once.
      const body = { trace_id: answer.traceId, rating: wanted.rating, idempotency_key: wanted.key };
      if (wanted.comment) body.comment = wanted.comment;
      if (answer.feedback?.assessmentId) body.assessment_id = answer.feedback.assessmentId;
      let error = null;
      let result = null;
      try {
        result = await callJson('ui/feedback', { method: 'POST', body });
      } catch (failure) {
        error = failure;
      }
      const now = sender.answer; // a fresh copy may be shown by now
      const latest = now.feedbackPending?.key === wanted.key;
      if (result) {
        now.feedback = { rating: wanted.rating, comment: wanted.comment, assessmentId: result.assessment_id };
        if (latest) now.feedbackPending = null;
        changed(sender, wanted.comment ? 'Thanks, comment recorded.' : 'Thanks, feedback recorded.', { save: true });
      } else if (!retryable(error) || attempt >= RETRY_DELAYS_MS.length) {
        if (latest) now.feedbackPending = null;
        const id = error.requestId ? ` (request id ${error.requestId})` : '';
        changed(sender, `Feedback not recorded: ${withoutRequestId(error.message, error.requestId)}${id}`, { save: true });
      } else {
        changed(sender, error.status === 404 ? 'Waiting for the trace of this answer to be stored…' : 'Not recorded yet; trying again…');
        await new Promise((resolve) => { setTimeout(resolve, RETRY_DELAYS_MS[attempt++]); });
      }
    }
  } finally {
    sender.running = false;
  }
}

/**
 * The feedback bar of `answer` (needs answer.traceId). `answer.feedback` is what the service
 * recorded ({rating, comment, assessmentId}), `answer.feedbackPending` what is still to send
 * ({rating, comment, key}); `onChange` stores the answer's conversation after each change.
 */
export function feedbackBar(answer, session, onChange) {
  const sender = senderFor(answer, onChange);
  const bar = el('div', 'feedback');
  const status = el('span', 'feedback-status');
  status.setAttribute('role', 'status');
  const up = thumb('up', 'Good answer');
  const down = thumb('down', 'Bad answer');
  const form = el('form', 'feedback-comment');
  form.hidden = true;
  const label = el('label', 'visually-hidden', 'Comment on this answer (optional)');
  const comment = el('textarea');
  comment.rows = 2;
  comment.maxLength = 4000;
  comment.placeholder = 'What was good or bad about it? (optional)';
  label.htmlFor = comment.id = `comment-${answer.traceId}`;
  const submit = el('button', 'small', 'Send comment');
  submit.type = 'submit';
  form.append(label, comment, submit);

  const chosen = () => sender.answer.feedbackPending ?? sender.answer.feedback;
  let shown = false;
  const redraw = () => {
    if (bar.isConnected) shown = true;
    else if (shown) {
      sender.redraws.delete(redraw); // this bar was replaced
      return;
    }
    const rating = chosen()?.rating;
    up.setAttribute('aria-pressed', String(rating === 'up'));
    down.setAttribute('aria-pressed', String(rating === 'down'));
    form.hidden = !rating || Boolean(chosen()?.comment);
    status.textContent = sender.status;
  };

  const choose = (rating, text) => {
    const choice = { rating, comment: text ?? chosen()?.comment ?? '', key: newRequestId() };
    if (same(choice, chosen())) return; // the pressed thumb again
    sender.answer.feedbackPending = choice;
    changed(sender, 'Sending…', { save: true }); // kept before it is sent
    deliver(sender);
  };
  up.addEventListener('click', () => choose('up'));
  down.addEventListener('click', () => choose('down'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = comment.value.trim();
    const rating = chosen()?.rating;
    if (text && rating) choose(rating, text);
  });

  bar.append(up, down);
  if (session.trace_url) {
    const link = el('a', 'trace-link', 'View trace');
    link.href = session.trace_url.replace('{trace_id}', encodeURIComponent(answer.traceId));
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    bar.append(link);
  }
  bar.append(status, form);
  sender.redraws.add(redraw);
  redraw();
  if (answer.feedbackPending && !sender.running) {
    // Chosen on an earlier visit and not recorded then: send it now.
    changed(sender, 'Sending…');
    deliver(sender);
  }
  return bar;
}

const SVG = 'http://www.w3.org/2000/svg';
// A thumb drawn here (emoji fonts are not everywhere); the down thumb is this one turned.
const THUMB = 'M2 10h4v11H2zM8 10l4-7c1.5 0 2.6 1.1 2.3 2.7L13.6 9H20a2 2 0 0 1 2 2.3l-1.4 7.5A2 2 0 0 1 18.6 21H8z';

function thumb(rating, label) {
  const button = el('button', `thumb thumb-${rating}`);
  button.type = 'button';
  button.setAttribute('aria-label', label);
  button.title = label;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', THUMB);
  svg.append(path);
  button.append(svg);
  return button;
}
