// Thumbs up/down and an optional comment on an answer, recorded by the service as MLflow
// feedback on the answer's trace; and a link to the trace when the tracking server has a UI.

import { callJson } from './api.js';

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * The feedback bar of `answer` (needs answer.traceId). `answer.feedback` keeps what was sent
 * ({rating, comment, assessmentId}); `onChange` is called after each recorded change.
 */
export function feedbackBar(answer, session, onChange) {
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

  const show = () => {
    const rating = answer.feedback?.rating;
    up.setAttribute('aria-pressed', String(rating === 'up'));
    down.setAttribute('aria-pressed', String(rating === 'down'));
    form.hidden = !rating || Boolean(answer.feedback?.comment);
  };

  async function record(rating, text) {
    status.textContent = 'Sending…';
    try {
      const body = { trace_id: answer.traceId, rating };
      if (text) body.comment = text;
      if (answer.feedback?.assessmentId) body.assessment_id = answer.feedback.assessmentId;
      const result = await callJson('ui/feedback', { method: 'POST', body });
      answer.feedback = { rating, comment: text || '', assessmentId: result.assessment_id };
      status.textContent = text ? 'Thanks, comment recorded.' : 'Thanks, feedback recorded.';
      onChange();
    } catch (error) {
      status.textContent = `Feedback not recorded: ${error.message}${error.requestId ? ` (request id ${error.requestId})` : ''}`;
    }
    show();
  }

  up.addEventListener('click', () => record('up', answer.feedback?.comment));
  down.addEventListener('click', () => record('down', answer.feedback?.comment));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = comment.value.trim();
    if (text && answer.feedback?.rating) record(answer.feedback.rating, text);
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
  show();
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
