// The list of conversations: open one, rename it in place, delete it.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draws `conversations` ([{id, title}]) into the list `ul`. `actions` has open(id),
 * rename(id, title) and remove(id); `currentId` is marked as the page's current item.
 */
export function drawSidebar(ul, conversations, currentId, actions) {
  const items = conversations.map((conversation) => {
    const li = el('li', 'conversation');
    const open = el('button', 'conversation-open', conversation.title || 'New chat');
    open.type = 'button';
    if (conversation.id === currentId) {
      li.classList.add('current');
      open.setAttribute('aria-current', 'page');
    }
    open.addEventListener('click', () => actions.open(conversation.id));
    const rename = iconButton('rename', `Rename “${conversation.title}”`, '\u270E');
    rename.addEventListener('click', () => startRename(li, open, conversation, actions));
    const remove = iconButton('delete', `Delete “${conversation.title}”`, '\u2715');
    remove.addEventListener('click', () => {
      // The browser's own confirmation: keyboard and screen-reader friendly, nothing to build.
      if (window.confirm(`Delete “${conversation.title}”? This cannot be undone.`)) actions.remove(conversation.id);
    });
    li.append(open, rename, remove);
    return li;
  });
  if (!items.length) items.push(el('li', 'empty', 'No conversations yet.'));
  ul.replaceChildren(...items);
}

function iconButton(kind, label, symbol) {
  const button = el('button', `icon-button ${kind}`, symbol);
  button.type = 'button';
  button.setAttribute('aria-label', label);
  button.title = label;
  return button;
}

function startRename(li, open, conversation, actions) {
  const form = el('form', 'rename-form');
  const input = el('input');
  input.value = conversation.title;
  input.maxLength = 200;
  input.setAttribute('aria-label', 'Conversation title');
  form.append(input);
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    form.replaceWith(open);
    if (save && title && title !== conversation.title) {
      open.textContent = title;
      actions.rename(conversation.id, title);
    }
    if (!save) open.focus();
  };
  form.addEventListener('submit', (event) => { event.preventDefault(); finish(true); });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') { event.preventDefault(); event.stopPropagation(); finish(false); }
  });
  input.addEventListener('blur', () => finish(true));
  open.replaceWith(form);
  input.focus();
  input.select();
}
