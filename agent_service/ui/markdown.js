// Markdown → DOM, written for model output: every piece of text becomes a Text node
// (textContent), never HTML, so no tag, attribute or entity in the answer can run script.
// Links keep only http(s) and mailto targets. Raw HTML shows as the literal text it is.
// The subset: headings, paragraphs, emphasis, strikethrough, code spans and fenced code
// blocks, block quotes, nested lists, GFM tables, rules, links and autolinks; images become
// links (the page loads nothing from elsewhere).

const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:']);
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( {0,12})([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
const TABLE_RULE = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const MAX_DEPTH = 12;

/** The href to use for a link target, or null when it is not an absolute safe URL. */
export function safeHref(raw) {
  let url;
  try {
    url = new URL(raw.trim());
  } catch {
    return null;
  }
  return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
}

/** Renders `text` into a new DocumentFragment. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderBlocks(String(text).replace(/\r\n?/g, '\n').split('\n'), fragment, 0);
  return fragment;
}

function el(tag, className, children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (children !== undefined) node.append(children);
  return node;
}

function isBlank(line) {
  return line.trim() === '';
}

function startsBlock(line, next) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)
    || LIST_ITEM.test(line) && !isBlank(LIST_ITEM.exec(line)[4] ?? '')
    || (line.includes('|') && next !== undefined && TABLE_RULE.test(next) && next.includes('-'));
}

function renderBlocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) { i++; continue; }
    let match;
    if ((match = FENCE.exec(line))) { i = codeBlock(lines, i, match, parent); continue; }
    if ((match = HEADING.exec(line))) {
      parent.append(inline(el(`h${match[1].length}`), match[2] ?? '', depth));
      i++;
      continue;
    }
    if (RULE.test(line)) { parent.append(el('hr')); i++; continue; }
    if (QUOTE.test(line)) { i = blockQuote(lines, i, parent, depth); continue; }
    if ((match = LIST_ITEM.exec(line))) { i = list(lines, i, parent, depth); continue; }
    if (line.includes('|') && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      i = table(lines, i, parent, depth);
      continue;
    }
    i = paragraph(lines, i, parent, depth);
  }
}

function codeBlock(lines, start, match, parent) {
  const [, fence, language] = match;
  const body = [];
  let i = start + 1;
  while (i < lines.length) {
    const closing = lines[i].trim();
    if (closing.startsWith(fence[0].repeat(fence.length)) && /^[`~]+$/.test(closing) && closing[0] === fence[0]) {
      i++;
      break;
    }
    body.push(lines[i]);
    i++;
  }
  const code = el('code', null, body.join('\n'));
  if (language) {
    code.dataset.language = language;
  }
  const figure = el('div', 'code-block');
  if (language) figure.append(el('div', 'code-language', language));
  figure.append(el('pre', null, code));
  parent.append(figure);
  return i;
}

function blockQuote(lines, start, parent, depth) {
  const inner = [];
  let i = start;
  while (i < lines.length && QUOTE.test(lines[i])) {
    inner.push(QUOTE.exec(lines[i])[1]);
    i++;
  }
  const quote = el('blockquote');
  if (depth < MAX_DEPTH) renderBlocks(inner, quote, depth + 1);
  else quote.append(inner.join('\n'));
  parent.append(quote);
  return i;
}

function list(lines, start, parent, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const indent = first[1].length;
  const node = el(ordered ? 'ol' : 'ul');
  if (ordered) {
    const number = parseInt(first[2], 10);
    if (number !== 1) node.start = number;
  }
  let i = start;
  let loose = false;
  const items = [];
  while (i < lines.length) {
    const match = LIST_ITEM.exec(lines[i]);
    if (!match || match[1].length !== indent || /\d/.test(match[2]) !== ordered) break;
    const contentIndent = indent + match[2].length + Math.min((match[3] ?? ' ').length, 4);
    const body = [match[4] ?? ''];
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        // A blank line continues the item only when indented content follows it.
        const next = lines.slice(i + 1).find((l) => !isBlank(l));
        if (next === undefined || leadingSpaces(next) < contentIndent) break;
        body.push('');
        loose = true;
        i++;
        continue;
      }
      const spaces = leadingSpaces(line);
      if (spaces >= contentIndent) { body.push(line.slice(contentIndent)); i++; continue; }
      // A lazy continuation line of the item's paragraph.
      if (spaces > indent || (!startsBlock(line, lines[i + 1]) && !isBlank(body[body.length - 1]))) {
        body.push(line.trim());
        i++;
        continue;
      }
      break;
    }
    items.push(body);
    // A blank line between items makes the list loose (paragraphs), as CommonMark says.
    if (i < lines.length && isBlank(lines[i])) {
      const next = lines.slice(i).findIndex((l) => !isBlank(l));
      const following = next < 0 ? null : LIST_ITEM.exec(lines[i + next]);
      if (following && following[1].length === indent) { loose = true; i += next; }
    }
  }
  for (const body of items) {
    const item = el('li');
    if (depth >= MAX_DEPTH) item.append(body.join('\n'));
    else if (!loose && body.length && !startsBlock(body[0], body[1])) {
      // A tight item: its first paragraph inline, the rest (nested lists) as blocks.
      let end = 1;
      while (end < body.length && !isBlank(body[end]) && !startsBlock(body[end], body[end + 1])) end++;
      inline(item, body.slice(0, end).join('\n'), depth);
      renderBlocks(body.slice(end), item, depth + 1);
    } else {
      renderBlocks(body, item, depth + 1);
    }
    node.append(item);
  }
  parent.append(node);
  return i;
}

function leadingSpaces(line) {
  let n = 0;
  for (const c of line) {
    if (c === ' ') n++;
    else if (c === '\t') n += 4 - (n % 4);
    else break;
  }
  return n;
}

function cells(row) {
  let text = row.trim();
  if (text.startsWith('|')) text = text.slice(1);
  if (text.endsWith('|') && !text.endsWith('\\|')) text = text.slice(0, -1);
  const result = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === '|') { current += '|'; i++; continue; }
    if (text[i] === '|') { result.push(current.trim()); current = ''; continue; }
    current += text[i];
  }
  result.push(current.trim());
  return result;
}

function table(lines, start, parent, depth) {
  const header = cells(lines[start]);
  const aligns = cells(lines[start + 1]).map((spec) => {
    const left = spec.startsWith(':');
    const right = spec.endsWith(':');
    return left && right ? 'center' : right ? 'right' : left ? 'left' : '';
  });
  const cell = (tag, text, column) => {
    const node = inline(el(tag), text, depth);
    if (aligns[column]) node.className = `align-${aligns[column]}`;
    return node;
  };
  const head = el('tr');
  header.forEach((text, column) => head.append(cell('th', text, column)));
  const tbody = el('tbody');
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes('|')) {
    const row = el('tr');
    const values = cells(lines[i]);
    for (let column = 0; column < header.length; column++) row.append(cell('td', values[column] ?? '', column));
    tbody.append(row);
    i++;
  }
  const wrapper = el('div', 'table-wrapper', el('table', null, el('thead', null, head)));
  wrapper.firstChild.append(tbody);
  parent.append(wrapper);
  return i;
}

function paragraph(lines, start, parent, depth) {
  const body = [lines[start]];
  let i = start + 1;
  while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines[i], lines[i + 1])) {
    body.push(lines[i]);
    i++;
  }
  parent.append(inline(el('p'), body.map((l) => l.replace(/^[ \t]+/, '')).join('\n'), depth));
  return i;
}

// ---- inline ----

const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/;
const BARE_URL = /^(?:https?:\/\/|mailto:)[^\s<>"]*[^\s<>"'.,:;!?)\]}*_~]/;

/** Appends the inline rendering of `text` to `node` and returns `node`. */
function inline(node, text, depth) {
  node.append(...inlineNodes(text, depth));
  return node;
}

function inlineNodes(text, depth) {
  const out = [];
  let plain = '';
  const flush = () => {
    if (plain) out.push(document.createTextNode(plain));
    plain = '';
  };
  const push = (node) => {
    flush();
    out.push(node);
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    if (c === '\\' && text[i + 1] === '\n') { push(el('br')); i += 2; continue; }
    if (c === '\\' && i + 1 < text.length && PUNCTUATION.test(text[i + 1])) { plain += text[i + 1]; i += 2; continue; }
    if (c === '`') {
      const run = /^`+/.exec(rest)[0];
      const close = text.indexOf(run, i + run.length);
      if (close >= 0 && text[close + run.length] !== '`') {
        let code = text.slice(i + run.length, close).replace(/\n/g, ' ');
        if (/^ .* $/.test(code) && code.trim()) code = code.slice(1, -1);
        push(el('code', null, code));
        i = close + run.length;
        continue;
      }
      plain += run;
      i += run.length;
      continue;
    }
    if (c === '\n') {
      if (plain.endsWith('  ')) { plain = plain.replace(/ +$/, ''); push(el('br')); } else plain += '\n';
      i++;
      continue;
    }
    if (depth < MAX_DEPTH && (c === '!' || c === '[')) {
      const link = parseLink(text, c === '!' ? i + 1 : i);
      if (link) {
        push(linkNode(link, c === '!', depth));
        i = link.end;
        continue;
      }
    }
    if (c === '<') {
      const auto = /^<((?:https?|mailto):[^\s<>]+)>/i.exec(rest);
      if (auto) { push(linkNode({ label: auto[1], href: auto[1], plainLabel: true }, false, depth)); i += auto[0].length; continue; }
    }
    if ((c === 'h' || c === 'm') && !/\w$/.test(plain)) {
      const bare = BARE_URL.exec(rest);
      if (bare) { push(linkNode({ label: bare[0], href: bare[0], plainLabel: true }, false, depth)); i += bare[0].length; continue; }
    }
    if (depth < MAX_DEPTH && (c === '*' || c === '_' || c === '~')) {
      const emphasis = parseEmphasis(text, i, plain);
      if (emphasis) {
        push(inline(el(emphasis.tag), emphasis.inner, depth + 1));
        i = emphasis.end;
        continue;
      }
    }
    plain += c;
    i++;
  }
  flush();
  return out;
}

function parseEmphasis(text, i, before) {
  const c = text[i];
  const run = c === '~' ? (text.startsWith('~~', i) ? '~~' : null)
    : text.startsWith(c.repeat(2), i) ? c.repeat(2) : c;
  if (!run) return null;
  const open = i + run.length;
  if (open >= text.length || /\s/.test(text[open])) return null;
  // `_` inside a word (snake_case) is not emphasis.
  if (c === '_' && /\w$/.test(before)) return null;
  let close = open;
  for (;;) {
    close = text.indexOf(run, close + 1);
    if (close < 0) return null;
    if (/\s/.test(text[close - 1])) continue;
    // A lone `*` that is part of a `**` run belongs to the strong pair.
    if (run.length === 1 && text[close + 1] === c) { close++; continue; }
    if (c === '_' && /\w/.test(text[close + run.length] ?? '')) continue;
    break;
  }
  return {
    tag: run === '~~' ? 'del' : run.length === 2 ? 'strong' : 'em',
    inner: text.slice(open, close),
    end: close + run.length,
  };
}

function parseLink(text, start) {
  if (text[start] !== '[') return null;
  let level = 0;
  let close = -1;
  for (let j = start; j < text.length; j++) {
    if (text[j] === '\\') { j++; continue; }
    if (text[j] === '[') level++;
    else if (text[j] === ']' && --level === 0) { close = j; break; }
  }
  if (close < 0 || text[close + 1] !== '(') return null;
  let parens = 0;
  let end = -1;
  for (let j = close + 1; j < text.length; j++) {
    if (text[j] === '\\') { j++; continue; }
    if (text[j] === '(') parens++;
    else if (text[j] === ')' && --parens === 0) { end = j; break; }
  }
  if (end < 0) return null;
  let target = text.slice(close + 2, end).trim();
  const titled = /^(\S+)\s+(?:"[^"]*"|'[^']*'|\([^)]*\))$/.exec(target);
  if (titled) target = titled[1];
  if (target.startsWith('<') && target.endsWith('>')) target = target.slice(1, -1);
  return { label: text.slice(start + 1, close), href: target, end: end + 1 };
}

function linkNode(link, image, depth) {
  const href = safeHref(link.href);
  const label = link.plainLabel ? [document.createTextNode(link.label)] : inlineNodes(link.label, depth + 1);
  if (image) label.unshift(document.createTextNode('Image: '));
  if (!href) {
    // An unsafe or relative target: the words stay, the link goes.
    const span = el('span', 'unsafe-link');
    span.append(...label);
    return span;
  }
  const anchor = el('a');
  anchor.href = href;
  anchor.target = '_blank';
  anchor.rel = 'noopener noreferrer nofollow';
  anchor.append(...label);
  return anchor;
}
