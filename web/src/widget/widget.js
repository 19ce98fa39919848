// The embeddable widget: one <script> on any site puts a launcher bubble
// in the page's corner; a click opens the chat (the customer page, in an
// iframe from the Switchboard server) and the bubble shows the unread
// count while it is closed.
//
//   <script src="https://support.example.com/widget.js" async
//     data-title="Acme Support" data-color="#2563eb"
//     data-reply="within a few minutes" data-lang="en"></script>
//
// Optional: data-token (a customer token your backend minted for the
// signed-in user; passed in the iframe URL's hash, never sent to a
// server), or data-user-id and data-user-hash (the site's signed identity:
// the hex HMAC-SHA256 of the user id keyed with the desk's
// identity_secret, docs/web.md) with data-name, data-email and
// data-attributes (a JSON object) for the contact, data-user (the demo server's customer id), data-position
// ("left" for the bottom-left corner), data-desk (the desk's id; the
// server's first desk without it). The colour, title and reply time come
// from the desk's configuration (GET /api/widget); data-color,
// data-title and data-reply override them. The launcher and the frame live in
// a shadow root, so that the host page's styles do not reach them. The
// frame tells the page only counts (unread) and requests (close).
(() => {
  const script = document.currentScript;
  if (!script || window.__switchboardWidget) return;
  window.__switchboardWidget = true;
  const d = script.dataset;
  const origin = new URL(script.src, location.href).origin;
  const lang = d.lang || (navigator.language.startsWith('zh') ? 'zh-CN' : 'en');
  const zh = lang.startsWith('zh');
  const valid = (c) => /^#[0-9a-f]{3}([0-9a-f]{3})?$/i.test(c || '');
  const color = valid(d.color) ? d.color : '#2563eb';
  const left = d.position === 'left';
  const label = { open: zh ? '打开聊天窗口' : 'Open the chat', close: zh ? '关闭聊天窗口' : 'Close the chat', unread: zh ? '条未读' : 'unread' };

  const q = new URLSearchParams({ embed: '1', lang });
  if (d.title) q.set('title', d.title);
  if (d.color) q.set('color', color);
  if (d.reply) q.set('reply', d.reply);
  if (d.user) q.set('user', d.user);
  if (d.desk) q.set('desk', d.desk);
  // Who the user is, for the page only (the URL's hash never reaches a
  // server): a token the site minted, or the site's signed identity
  // (data-user-id, data-user-hash, and the contact: data-name,
  // data-email, data-attributes as a JSON object), which the page
  // exchanges for a token (POST /api/identify).
  const hq = new URLSearchParams();
  if (d.token) hq.set('token', d.token);
  if (d.userId && d.userHash) {
    hq.set('uid', d.userId);
    hq.set('uhash', d.userHash);
    if (d.name) hq.set('name', d.name);
    if (d.email) hq.set('email', d.email);
    if (d.attributes) hq.set('attrs', d.attributes);
  }
  const src = `${origin}/?${q}${hq.toString() ? `#${hq}` : ''}`;

  const host = document.createElement('div');
  host.id = 'switchboard-widget';
  const root = host.attachShadow({ mode: 'open' });
  const side = left ? 'left' : 'right';
  root.innerHTML = `<style>
    :host { all: initial; }
    .launcher { position: fixed; ${side}: 20px; bottom: 20px; z-index: 2147483000; width: 56px; height: 56px; border-radius: 50%;
      border: 0; background: ${color}; color: #fff; cursor: pointer; box-shadow: 0 4px 16px rgba(0,0,0,.25); display: grid; place-items: center; }
    .launcher:focus-visible { outline: 3px solid #111827; outline-offset: 2px; }
    .launcher svg { width: 28px; height: 28px; }
    .badge { position: absolute; top: -4px; ${left ? 'right' : 'left'}: -4px; min-width: 20px; height: 20px; padding: 0 5px; border-radius: 10px;
      background: #b91c1c; color: #fff; font: 600 12px/20px system-ui, sans-serif; text-align: center; }
    .frame { position: fixed; ${side}: 20px; bottom: 88px; z-index: 2147483000; width: 380px; height: min(640px, calc(100vh - 108px));
      border: 0; border-radius: 12px; box-shadow: 0 8px 32px rgba(0,0,0,.25); background: #fff; }
    @media (max-width: 480px) { .frame { left: 0; right: 0; bottom: 0; top: 0; width: 100%; height: 100%; border-radius: 0; } }
    [hidden] { display: none !important; }
  </style>
  <iframe class="frame" hidden></iframe>
  <button class="launcher" type="button" aria-expanded="false">
    <svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2h-8l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>
    <span class="badge" hidden></span>
  </button>`;
  const frame = root.querySelector('.frame');
  const button = root.querySelector('.launcher');
  const badge = root.querySelector('.badge');
  frame.title = d.title || 'Chat';
  frame.src = src; // loads now: the unread count shows before the first open
  let open = false;
  let unread = 0;

  function draw() {
    button.setAttribute('aria-expanded', String(open));
    button.setAttribute('aria-label', `${open ? label.close : label.open}${unread && !open ? ` (${unread} ${label.unread})` : ''}`);
    badge.hidden = open || !unread;
    badge.textContent = unread > 99 ? '99+' : String(unread);
  }

  function setOpen(on) {
    open = on;
    frame.hidden = !on;
    frame.contentWindow.postMessage({ sb: 1, type: on ? 'open' : 'closed' }, origin);
    draw();
    if (!on) button.focus();
  }

  // The desk's colour and title, where the snippet does not set them.
  if (!valid(d.color) || !d.title)
    fetch(`${origin}/api/widget${d.desk ? `?desk=${encodeURIComponent(d.desk)}` : ''}`)
      .then((r) => (r.ok ? r.json() : null))
      .then((look) => {
        if (!look) return;
        if (!valid(d.color) && valid(look.color)) button.style.background = look.color;
        const titles = look.title || {};
        const title = titles[lang] || titles[lang.split('-')[0]] || titles.en;
        if (!d.title && title) frame.title = String(title).slice(0, 60);
      })
      .catch(() => {});

  button.addEventListener('click', () => setOpen(!open));
  window.addEventListener('message', (ev) => {
    if (ev.origin !== origin || ev.source !== frame.contentWindow || !ev.data || ev.data.sb !== 1) return;
    if (ev.data.type === 'unread') {
      unread = Math.max(0, Number(ev.data.n) || 0);
      draw();
    } else if (ev.data.type === 'close') setOpen(false);
  });
  window.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && open) setOpen(false);
  });
  draw();
  (document.body || document.documentElement).append(host);
})();
