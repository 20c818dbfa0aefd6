// The demo inbox: the SDK's TabClient and the DOM, nothing else. Bundled by esbuild at build time.
import { TabClient, type FeedEvent, type InboxCounts, type TabRole } from '../../client/index.js';

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

const ui = {
  bell: byId<HTMLButtonElement>('bell'),
  badge: byId<HTMLSpanElement>('badge'),
  status: byId<HTMLSpanElement>('status'),
  role: byId<HTMLSpanElement>('role'),
  login: byId<HTMLElement>('login'),
  loginForm: byId<HTMLFormElement>('login-form'),
  loginError: byId<HTMLParagraphElement>('login-error'),
  uid: byId<HTMLInputElement>('uid'),
  token: byId<HTMLTextAreaElement>('token'),
  inbox: byId<HTMLElement>('inbox'),
  who: byId<HTMLElement>('who'),
  unreadCount: byId<HTMLSpanElement>('unread-count'),
  markAll: byId<HTMLButtonElement>('mark-all'),
  logout: byId<HTMLButtonElement>('logout'),
  closed: byId<HTMLParagraphElement>('closed'),
  panel: byId<HTMLElement>('panel'),
  tabInbox: byId<HTMLButtonElement>('tab-inbox'),
  tabArchived: byId<HTMLButtonElement>('tab-archived'),
  archivedCount: byId<HTMLSpanElement>('archived-count'),
  list: byId<HTMLUListElement>('list'),
  empty: byId<HTMLParagraphElement>('empty'),
  publishForm: byId<HTMLFormElement>('publish-form'),
  to: byId<HTMLInputElement>('to'),
  text: byId<HTMLInputElement>('text'),
  apiKey: byId<HTMLInputElement>('api-key'),
  publishStatus: byId<HTMLSpanElement>('publish-status'),
};

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
let client: TabClient | null = null;
/** Which tab of the inbox shows: the inbox itself (unarchived events) or the archived ones. */
let view: 'inbox' | 'archived' = 'inbox';

async function errorText(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: { message?: string } };
    return body.error?.message ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function devToken(uid: number): Promise<string> {
  const response = await fetch('/v1/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uid, ttlSeconds: 3600 }),
  });
  if (!response.ok) {
    throw new Error(
      response.status === 404
        ? 'this server does not mint dev tokens (--dev-tokens is off or not the embedded default); paste a token'
        : await errorText(response),
    );
  }
  return ((await response.json()) as { token: string }).token;
}

function bodyText(body: unknown): string {
  if (typeof body === 'object' && body !== null && 'text' in body) {
    const text = body.text;
    if (typeof text === 'string') return text;
  }
  return JSON.stringify(body);
}

function renderItem(event: FeedEvent): HTMLLIElement {
  const item = document.createElement('li');
  item.dataset.seq = String(event.seq);
  item.className = event.read ? 'read' : 'unread';
  item.title = event.read ? 'read' : 'click to mark read';
  const dot = document.createElement('span');
  dot.className = 'dot';
  const seq = document.createElement('span');
  seq.className = 'seq';
  seq.textContent = `#${event.seq}`;
  // textContent, never innerHTML: bodies come from whoever published them.
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = bodyText(event.body);
  const time = document.createElement('time');
  time.dateTime = new Date(event.createTime).toISOString();
  time.textContent = new Date(event.createTime).toLocaleTimeString();
  const action = document.createElement('button');
  action.type = 'button';
  action.className = event.archived ? 'unarchive' : 'archive';
  action.textContent = event.archived ? 'Unarchive' : 'Archive';
  item.append(dot, seq, text, time, action);
  return item;
}

function renderList(): void {
  const events = client?.list({ status: view === 'inbox' ? 'unarchived' : 'archived' }) ?? [];
  ui.list.replaceChildren(...events.map(renderItem));
  ui.empty.hidden = events.length > 0;
  ui.empty.textContent =
    view === 'inbox' ? 'No events yet. Publish one below.' : 'Nothing archived.';
  ui.tabInbox.setAttribute('aria-selected', String(view === 'inbox'));
  ui.tabArchived.setAttribute('aria-selected', String(view === 'archived'));
}

/** The bell's badge counts what was never seen; the toolbar and the tab the rest. */
function renderCounts(counts: InboxCounts): void {
  const unseen = counts.unseenCount;
  ui.badge.textContent = String(unseen);
  ui.badge.dataset.count = String(unseen);
  ui.unreadCount.textContent = String(counts.unreadCount);
  ui.archivedCount.textContent = String(counts.archivedCount);
  document.title = unseen > 0 ? `(${unseen}) MiniPush demo inbox` : 'MiniPush demo inbox';
}

function setOpen(open: boolean): void {
  ui.panel.hidden = !open;
  ui.closed.hidden = open;
  ui.bell.setAttribute('aria-expanded', String(open));
  // Opening the inbox is what makes its events seen: the badge clears, bold stays until read.
  if (open) client?.markAllSeen().catch((err: unknown) => console.warn('markAllSeen failed', err));
}

function showView(next: typeof view): void {
  view = next;
  renderList();
}

function renderRole(role: TabRole): void {
  ui.role.textContent =
    role === 'leader' ? 'this tab holds the socket' : 'shares the socket of another tab';
  ui.role.dataset.role = role;
}

function start(options: { uid: number; token?: string }): void {
  const { uid, token } = options;
  const tab = new TabClient({
    url: wsUrl,
    scope: `demo-uid-${uid}`,
    ...(token === undefined ? { getToken: () => devToken(uid) } : { token }),
  });
  client = tab;
  tab.on('event', renderList);
  tab.on('read', renderList);
  tab.on('archived', renderList);
  tab.on('reset', renderList);
  tab.on('counts', renderCounts);
  tab.on('state', (state) => {
    ui.status.textContent = state;
    ui.status.dataset.state = state;
  });
  tab.on('role', renderRole);
  tab.on('disconnect', (info) => {
    if (!info.reconnect) ui.status.textContent = `stopped (${info.code}: ${info.reason})`;
  });
  tab.on('error', (error) => console.warn('minipush:', error));
  ui.who.textContent = String(uid);
  ui.to.value = String(uid);
  ui.login.hidden = true;
  ui.inbox.hidden = false;
  ui.bell.hidden = false;
  view = 'inbox';
  setOpen(false);
  renderCounts(tab.counts);
  renderList();
  tab.connect();
  renderRole(tab.role);
  ui.role.dataset.election = tab.electionMethod ?? '';
}

ui.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  ui.loginError.textContent = '';
  const pasted = ui.token.value.trim();
  if (pasted !== '') {
    try {
      const payload = JSON.parse(
        atob(pasted.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')),
      ) as {
        sub?: string;
      };
      start({ uid: Number(payload.sub), token: pasted });
    } catch {
      ui.loginError.textContent = 'that is not a JWT';
    }
    return;
  }
  const uid = Number(ui.uid.value);
  // Try a token first so a server without dev tokens says so here, not in a reconnect loop.
  devToken(uid).then(
    () => start({ uid }),
    (err: unknown) => {
      ui.loginError.textContent = err instanceof Error ? err.message : String(err);
    },
  );
});

ui.logout.addEventListener('click', () => {
  client?.disconnect();
  client = null;
  ui.inbox.hidden = true;
  ui.bell.hidden = true;
  ui.login.hidden = false;
  ui.role.textContent = '';
  ui.status.textContent = 'disconnected';
  ui.status.dataset.state = 'disconnected';
  renderCounts({ unreadCount: 0, unseenCount: 0, archivedCount: 0 });
});

ui.bell.addEventListener('click', () => setOpen(ui.panel.hidden));
ui.tabInbox.addEventListener('click', () => showView('inbox'));
ui.tabArchived.addEventListener('click', () => showView('archived'));

ui.list.addEventListener('click', (event) => {
  const target = event.target as Element;
  const item = target.closest('li');
  const seq = Number(item?.dataset.seq);
  if (!client || !item) return;
  const action = target.closest('button');
  if (action) {
    const done = action.classList.contains('unarchive')
      ? client.unarchive([seq])
      : client.archive([seq]);
    done.catch((err: unknown) => console.warn(`${action.className} failed`, err));
    return;
  }
  if (!item.classList.contains('unread')) return;
  client.markRead([seq]).catch((err: unknown) => console.warn('markRead failed', err));
});

ui.markAll.addEventListener('click', () => {
  client?.markAllRead().catch((err: unknown) => console.warn('markAllRead failed', err));
});

ui.publishForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const to = ui.to.value
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);
  ui.publishStatus.textContent = 'publishing…';
  fetch('/v1/events', {
    method: 'POST',
    headers: { authorization: `Bearer ${ui.apiKey.value}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to, body: { text: ui.text.value } }),
  })
    .then(async (response) => {
      ui.publishStatus.textContent = response.ok ? 'published' : await errorText(response);
    })
    .catch((err: unknown) => {
      ui.publishStatus.textContent = String(err);
    });
});

// Development only: the server hands out its generated API key so the form works at once.
fetch('/demo/dev-api-key')
  .then(async (response) => {
    if (response.ok) ui.apiKey.value = ((await response.json()) as { apiKey: string }).apiKey;
  })
  .catch(() => undefined);
