// The agent workbench (served at /agent): the conversation list (queued /
// mine / closed, unread badges, tags, search with the hits marked; paged
// as it scrolls), the selected conversation (its id in the URL) with
// history, quote and reply, tags, canned replies ("/" in the composer),
// transfer (a picker of the agents and groups this page knows, with a
// note where the server takes one) and close, typing, customer info, the
// agent's status (available / away), notifications and keyboard
// shortcuts, private notes and the customer's contact (agentside.js). A
// conversation this agent may not write in (queued, with the bot,
// transferred away, closed) opens read-only, saying why.
import { params, connect, initLang, stateLabel, frameBatcher, h, toast, errText, fmtTime, fmtDateTime, setText } from './common.js';
import { t, lang } from './i18n.js';
import { ChatView } from './chatview.js';
import { Notifier } from './notify.js';
import { richText } from './render.js';
import { ReportsView } from './reports.js';
import { AgentSide } from './agentside.js';

const PAGE = 30;
const SEARCH_DELAY_MS = 300;

async function main() {
  initLang(document.querySelector('#lang'));
  const user = params.get('user') || 'bob';
  document.querySelector('#me').textContent = user;
  const { client, store } = await connect(user, 'agent');
  const desk = document.querySelector('.desk');
  const listEl = document.querySelector('#convs');
  const panel = document.querySelector('#convpanel');
  const sentinel = document.querySelector('.list-sentinel');
  const conn = document.querySelector('#conn');
  let cannedItems = [];
  let side = null;
  const view = new ChatView({
    store,
    root: document.querySelector('#chat'),
    staff: true,
    user,
    canned: () => cannedItems,
    // In note mode the composer writes a private note.
    onSubmit: (text) => {
      if (!side || !side.noteMode) return false;
      side.sendNote(text);
      return true;
    },
  });
  let tab = 'mine';
  let tagFilter = '';
  let ids = [];
  let cursor = '';
  let more = false;
  let loading = null;
  let gen = 0;
  let selected = null;
  let searchHits = null;
  let searchTerms = null;

  // What a conversation is to this agent: its state in words, and
  // whether the agent may write in it (and if not, why).
  function stateText(c) {
    const i = c.info || {};
    switch (i.state) {
      case 'STATE_BOT':
        return t('ast.bot');
      case 'STATE_QUEUED':
        return i.queue_position ? t('ast.queued', i.queue_position) : t('ast.queued.anon');
      case 'STATE_ASSIGNED':
        return i.agent === user ? t('ast.mine') : i.agent ? t('ast.assigned', i.agent) : t('ast.assigned.anon');
      case 'STATE_CLOSED':
        return t('ast.closed');
      case 'STATE_OPEN':
        return t('ast.open');
      default:
        return '';
    }
  }

  // Whether this agent is a member now, by the server's latest word (the
  // conversation's members); unknown counts as yes.
  function member(c) {
    const ms = c.info && c.info.members;
    return !ms || !ms.length || ms.some((m) => m.user_id === user);
  }

  function mode(c) {
    const i = c.info || {};
    if (i.state === 'STATE_QUEUED') return { writable: false, history: false, notice: t('ro.queued') };
    if (i.state === 'STATE_CLOSED') return { writable: false, history: member(c), notice: t('ro.closed') };
    if (i.state === 'STATE_ASSIGNED' && i.agent && i.agent !== user) return { writable: false, history: member(c), notice: t('ro.other', i.agent) };
    if (!member(c)) return { writable: false, history: false, notice: i.state === 'STATE_BOT' ? t('ro.bot') : t('ro.notmember') };
    return { writable: true, history: true };
  }

  function customerOf(c) {
    const i = c.info || {};
    return i.customer || [...c.members].find((m) => m !== user && m !== 'bot' && m !== 'system') || c.title;
  }

  // ---- the agents and groups this page knows (for the transfer picker) --

  // Agents and groups seen in conversations (assigned agents, agent
  // members, groups queued for), kept per browser: there is no frame that
  // lists the desk's agents for an agent.
  const knownKey = `sb.known.${user}`;
  const known = (() => {
    try {
      const k = JSON.parse(localStorage.getItem(knownKey) || '{}');
      return { agents: new Set(k.agents || []), groups: new Set(k.groups || []) };
    } catch (e) {
      return { agents: new Set(), groups: new Set() };
    }
  })();
  function learn(info) {
    const n = known.agents.size + known.groups.size;
    if (info.agent) known.agents.add(info.agent);
    for (const m of info.members || []) if (m.role === 'ROLE_AGENT') known.agents.add(m.user_id);
    if (info.group) known.groups.add(info.group);
    if (known.agents.size + known.groups.size !== n)
      try {
        localStorage.setItem(knownKey, JSON.stringify({ agents: [...known.agents], groups: [...known.groups] }));
      } catch (e) {
        /* kept for this page */
      }
  }
  client.on('conversation', learn);

  // ---- the conversation list, a page at a time --------------------------------

  function query() {
    const q = { limit: PAGE, tag: tagFilter, mine: tab !== 'queued' };
    if (tab === 'queued') q.state = 'STATE_QUEUED';
    if (tab === 'closed') q.state = 'STATE_CLOSED';
    return q;
  }

  function localFilter(c) {
    if (c.notesOf) return false; // a conversation's notes show in its pane
    const st = c.state;
    if (tab === 'queued') return st === 'STATE_QUEUED';
    if (tab === 'closed') return st === 'STATE_CLOSED';
    return st !== 'STATE_QUEUED' && st !== 'STATE_CLOSED';
  }

  function loadPage(reset) {
    if (loading && !reset) return loading;
    if (reset) {
      gen++;
      cursor = '';
      more = true;
    }
    if (!more) return Promise.resolve();
    const my = gen;
    loading = client
      .convList({ ...query(), cursor })
      .then((r) => {
        if (my !== gen) return;
        if (reset) ids = [];
        for (const c of r.convs) {
          learn(c);
          if (tab === 'mine' && c.state === 'STATE_CLOSED') continue;
          store.onConversation(c);
          if (!ids.includes(c.conv_id)) ids.push(c.conv_id);
        }
        cursor = r.next_cursor;
        more = r.more && !!r.next_cursor;
        drawList();
      })
      .catch((e) => {
        // A server that cannot list conversations (no CONV_LIST, or a
        // store without it): the conversations SYNC and pushes told us of.
        if (my !== gen) return;
        ids = store.sorted(localFilter).map((c) => c.id);
        more = false;
        drawList();
        if (e.code !== 'ERR_UNKNOWN_TYPE' && e.code !== 'ERR_INVALID') toast(errText(e));
      })
      .finally(() => {
        if (my === gen) loading = null;
      });
    return loading;
  }

  // The bottom sentinel pages the list (IntersectionObserver), like the
  // messages' top sentinel.
  new IntersectionObserver((es) => es.some((e) => e.isIntersecting) && more && loadPage(false), { root: panel, rootMargin: '200px' }).observe(sentinel);

  // A conversation's link: the page's own URL with its id, so that Enter,
  // a click, a middle click (another tab) and a reload all open it.
  function convHref(id, seq) {
    const u = new URL(location.href);
    u.searchParams.set('conv', id);
    if (seq) u.searchParams.set('seq', seq);
    else u.searchParams.delete('seq');
    return u.pathname + u.search;
  }

  function convItem(c) {
    const last = c.lastMessage;
    const name = customerOf(c);
    return h(
      'li',
      null,
      h(
        'a.conv',
        { href: convHref(c.id), dataset: { id: c.id }, 'aria-current': c === selected ? 'true' : null },
        h('span.row', null, h('b', { text: name }), c.unread ? h('span.badge', { text: c.unread > 99 ? '99+' : c.unread, 'aria-label': t('unread', c.unread) }) : null),
        h('span.last', { text: last ? (last.recalled ? t('recalled') : last.body) : '' }),
        h('span.row.small', null, h('span', { text: stateText(c) }), h('span', { text: fmtTime(c.lastTs) })),
        c.tags.length ? h('span.tags', null, c.tags.map((x) => h('span.chip', { text: x }))) : null,
      ),
    );
  }

  // What an item shows: it is built again only when this changes (a
  // burst into one conversation redraws that item once per frame, the
  // others not at all).
  function convSig(c) {
    const i = c.info || {};
    const last = c.lastMessage;
    return `${c === selected}|${c.unread}|${last ? `${last.seq}|${last.recalled}` : ''}|${i.state}|${i.queue_position}|${i.agent}|${i.customer}|${c.lastTs}|${c.tags.join(',')}|${c.title}|${c.members.size}`;
  }
  const items = new Map(); // conv id -> { sig, el }
  let emptyEl = null;

  function drawList() {
    let els;
    if (searchHits) {
      items.clear();
      els = searchHits.length
        ? searchHits.map((m) =>
            h(
              'li',
              null,
              h(
                'a.conv.hit',
                { href: convHref(m.conv_id, m.seq), dataset: { id: m.conv_id, seq: m.seq } },
                h('span.row', null, h('b', { text: m.sender }), h('span.sub', { text: `#${m.conv_id} · ${fmtTime(m.server_ts)}` })),
                h('span.last', null, ...richText(m.body, searchTerms)),
              ),
            ),
          )
        : [h('li.empty', { text: t('search.none') })];
    } else {
      els = [];
      const keep = new Set();
      for (const id of ids) {
        const c = store.conv(id);
        const sig = convSig(c);
        let it = items.get(id);
        if (!it || it.sig !== sig) {
          it = { sig, el: convItem(c) };
          items.set(id, it);
        }
        keep.add(id);
        els.push(it.el);
      }
      for (const id of items.keys()) if (!keep.has(id)) items.delete(id);
      if (!els.length) els.push(emptyEl || (emptyEl = h('li.empty', { text: t('empty.list') })));
    }
    // The DOM is touched only where the list differs.
    const kids = listEl.children;
    let same = kids.length === els.length;
    for (let i = 0; same && i < els.length; i++) same = kids[i] === els[i];
    if (!same) listEl.replaceChildren(...els);
  }

  listEl.addEventListener('click', (ev) => {
    const a = ev.target.closest('a.conv');
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return; // another tab: the browser's
    ev.preventDefault();
    select(Number(a.dataset.id));
    if (a.dataset.seq) {
      view.highlight(searchTerms);
      view.jump(Number(a.dataset.seq));
    }
  });

  // Tabs: a tablist (arrows move between them, as the pattern wants).
  const tabs = [...document.querySelectorAll('.tabs [role=tab]')];
  function setTab(b, focus) {
    tab = b.dataset.tab;
    clearSearch();
    for (const x of tabs) {
      const on = x === b;
      x.classList.toggle('on', on);
      x.setAttribute('aria-selected', String(on));
      x.tabIndex = on ? 0 : -1;
    }
    panel.setAttribute('aria-labelledby', b.id);
    if (focus) b.focus();
    loadPage(true);
  }
  for (const b of tabs) {
    b.addEventListener('click', () => setTab(b, false));
    b.addEventListener('keydown', (ev) => {
      const d = { ArrowLeft: -1, ArrowRight: 1, Home: -99, End: 99 }[ev.key];
      if (!d) return;
      ev.preventDefault();
      setTab(tabs[Math.max(0, Math.min(tabs.length - 1, tabs.indexOf(b) + d))], true);
    });
  }
  document.querySelector('#tagfilter').addEventListener('change', (ev) => {
    tagFilter = ev.target.value.trim();
    loadPage(true);
  });

  // Search as one types (after a pause), at once on Enter; an emptied box
  // shows the list again at once.
  const searchBox = document.querySelector('#search');
  let searchTimer = null;
  let searchGen = 0;
  function clearSearch() {
    clearTimeout(searchTimer);
    searchGen++;
    if (!searchHits) return;
    searchHits = null;
    searchTerms = null;
    view.highlight(null);
    drawList();
  }
  async function runSearch() {
    clearTimeout(searchTimer);
    const q = searchBox.value.trim();
    if (!q) return clearSearch();
    const my = ++searchGen;
    try {
      const r = await client.search(0, q, 50);
      if (my !== searchGen) return;
      searchHits = r.messages;
      searchTerms = q.split(/\s+/).filter(Boolean);
      drawList();
    } catch (e) {
      if (my === searchGen) toast(errText(e));
    }
  }
  searchBox.addEventListener('input', () => {
    if (!searchBox.value.trim()) return clearSearch();
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DELAY_MS);
  });
  searchBox.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') runSearch();
    else if (ev.key === 'Escape') {
      searchBox.value = '';
      clearSearch();
    }
  });

  // ---- the selected conversation ------------------------------------------------

  // Notes and the contact of the selected conversation; the links of the
  // side panel (past conversations, mentions) open theirs in place.
  side = new AgentSide({ client, store, view, user, convHref, mayRead: (c) => mode(c).history });
  document.querySelector('#infopanel').addEventListener('click', (ev) => {
    const a = ev.target.closest('a[href]');
    const id = a ? Number(new URL(a.href).searchParams.get('conv')) : 0;
    if (!id) return;
    ev.preventDefault();
    select(id);
  });

  function select(id) {
    selected = store.conv(id);
    const m = mode(selected);
    view.show(selected, { history: m.history });
    side.show(selected);
    history.replaceState(null, '', convHref(id));
    desk.classList.add('has-conv');
    drawList();
    drawPane();
  }

  const headEl = document.querySelector('#convhead');
  const infoEl = document.querySelector('#info');
  const transferBtn = document.querySelector('#transferbtn');
  const closeBtn = document.querySelector('#closebtn');
  // Taking a queued conversation, where the server has CLAIM.
  const claimBtn = document.querySelector('#claimbtn');
  const canClaim = client.supports('Frame', 'claim');
  const addTag = document.querySelector('#addtag');
  const pane = frameBatcher(drawPane);
  let paneSig = '';
  let infoValues = [];
  let langNames = null;
  const langName = (code) => {
    try {
      langNames = langNames || new Intl.DisplayNames([lang()], { type: 'language' });
      return langNames.of(code);
    } catch (e) {
      return code;
    }
  };

  function drawPane() {
    const c = selected;
    document.querySelector('#workspace').classList.toggle('none', !c);
    document.querySelector('.emptypane').hidden = !!c;
    if (!c) return;
    const i = c.info || {};
    const m = mode(c);
    view.setWritable(m.writable, m.notice ? (i.state === 'STATE_QUEUED' && c.lastMessage && !c.list.length ? `${m.notice} ${t('ro.last', c.lastMessage.body)}` : m.notice) : '');
    if (m.history !== view.history) view.show(c, { history: m.history });
    side.show(c);
    claimBtn.hidden = !(canClaim && i.state === 'STATE_QUEUED');
    transferBtn.disabled = !m.writable;
    closeBtn.disabled = !m.writable;
    addTag.disabled = !m.writable;
    setText(headEl.querySelector('.who'), customerOf(c));
    setText(headEl.querySelector('.st'), stateText(c));
    const rows = [
      ['info.customer', customerOf(c)],
      ['info.state', stateText(c)],
      ['info.group', i.group],
      ['info.agent', i.agent ? (i.agent === user ? t('you', user) : i.agent) : ''],
      ['info.created', fmtDateTime(i.created_ts)],
      ['info.messages', Math.max(i.last_seq || 0, c.list.lastSeq())],
      ['info.lang', c.peerLang ? langName(c.peerLang) : ''],
      ['info.tags', c.tags.join(', ')],
      // The note of the transfer that brought it here (the server shows
      // it to the agent it went to only).
      ['info.note', i.transfer_note ? t('info.note.from', i.transfer_from || '?', i.transfer_note) : ''],
      ['info.csat', i.csat_rating ? `${'★'.repeat(i.csat_rating)} ${t('info.csat.value', i.csat_rating)}${i.csat_comment ? ` — “${i.csat_comment}”` : ''}` : ''],
    ];
    // Rebuilt only when the tags or the set of rows change; otherwise
    // the values that changed (a burst: the message count) are written
    // in place.
    const shown = rows.filter(([, v]) => v);
    const sig = JSON.stringify([c.id, c.tags, m.writable, shown.map(([k]) => k)]);
    if (sig !== paneSig) {
      paneSig = sig;
      const tags = headEl.querySelector('.convtags');
      tags.textContent = '';
      for (const x of c.tags)
        tags.append(h('span.chip', null, x, m.writable ? h('button', { type: 'button', dataset: { untag: x }, text: '×', 'aria-label': t('tag.remove', x) }) : null));
      infoEl.textContent = '';
      infoValues = shown.map(([k, v]) => {
        const dd = h('dd', { text: String(v) });
        infoEl.append(h('dt', { text: t(k) }), dd);
        return dd;
      });
    } else {
      shown.forEach(([, v], j) => setText(infoValues[j], String(v)));
    }
  }

  headEl.addEventListener('click', (ev) => {
    const x = ev.target.closest('[data-untag]');
    if (!x || !selected) return;
    act(() => store.tag(selected.id, 0, [], [x.dataset.untag]));
  });

  async function act(fn) {
    try {
      await fn();
      pane();
      loadPage(true);
      return true;
    } catch (e) {
      toast(errText(e));
      return false;
    }
  }

  addTag.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || !selected) return;
    const tag = ev.target.value.trim();
    ev.target.value = '';
    if (tag) act(() => store.tag(selected.id, 0, [tag]));
  });
  closeBtn.addEventListener('click', () => selected && act(() => client.close(selected.id)));
  claimBtn.addEventListener('click', () => selected && act(() => client.claim(selected.id)));
  document.querySelector('#backbtn').addEventListener('click', () => {
    desk.classList.remove('has-conv');
    const a = selected && listEl.querySelector(`a[data-id="${selected.id}"]`);
    if (a) a.focus();
  });
  // The customer panel is a drawer on narrower screens.
  const infoBtn = document.querySelector('#infobtn');
  const infoClose = document.querySelector('#infoclose');
  function showInfo(on) {
    desk.classList.toggle('show-info', on);
    infoBtn.setAttribute('aria-expanded', String(on));
    (on ? infoClose : infoBtn).focus();
  }
  infoBtn.addEventListener('click', () => showInfo(!desk.classList.contains('show-info')));
  infoClose.addEventListener('click', () => showInfo(false));
  document.querySelector('#infopanel').addEventListener('keydown', (ev) => ev.key === 'Escape' && showInfo(false));

  // ---- transfer: a picker of agents and groups, with a note ---------------------

  const dlg = document.querySelector('#transferdlg');
  const toSel = document.querySelector('#transferto');
  const otherBox = document.querySelector('#otherbox');
  const other = document.querySelector('#transferother');
  const noteBox = document.querySelector('#notebox');
  const note = document.querySelector('#transfernote');
  const dlgErr = dlg.querySelector('.err');
  noteBox.hidden = !client.supports('Transfer', 'note');
  // The whole team where the server lists it (AGENT_LIST), else the
  // agents and groups this page has met in conversations.
  const canTeam = client.supports('Frame', 'agent_list');
  let teamGroups = [];
  async function loadTeam() {
    try {
      teamGroups = (await store.loadTeam()).groups || [];
      for (const g of teamGroups) learn({ group: g });
    } catch (e) {
      teamGroups = [];
    }
  }
  const presence = (a) => {
    const m = store.team.get(a);
    if (!m) return '';
    const st = m.status === 'AGENT_ONLINE' ? t('agent.online') : m.status === 'AGENT_AWAY' ? t('agent.away') : t('agent.offline');
    return m.capacity ? t('transfer.presence', st, m.load || 0, m.capacity) : st;
  };
  function pickerOptions() {
    const cur = ((selected && selected.info) || {}).agent;
    const names = new Set([...known.agents, ...store.team.keys()]);
    const agents = [...names].filter((a) => a !== user && a !== cur).sort();
    const groups = [...new Set([...known.groups, ...teamGroups])].sort();
    const keep = toSel.value;
    toSel.replaceChildren(
      agents.length
        ? h(
            'optgroup',
            { label: t('transfer.agents') },
            agents.map((a) => {
              const p = presence(a);
              return h('option', { value: `agent:${a}`, text: p ? `${a} (${p})` : a, dataset: { status: (store.team.get(a) || {}).status || '' } });
            }),
          )
        : null,
      groups.length ? h('optgroup', { label: t('transfer.groups') }, groups.map((g) => h('option', { value: `group:${g}`, text: t('transfer.group', g) }))) : null,
      h('option', { value: 'other', text: t('transfer.other') }),
    );
    if (keep && [...toSel.options].some((o) => o.value === keep)) toSel.value = keep;
  }
  // Teammates' statuses change while the picker is open.
  store.onChange((convs, kinds) => {
    if (kinds && kinds.has && kinds.has('team') && dlg.open) pickerOptions();
  });
  transferBtn.addEventListener('click', async () => {
    if (!selected) return;
    if (canTeam) await loadTeam();
    toSel.value = '';
    pickerOptions();
    otherBox.hidden = toSel.value !== 'other';
    other.value = '';
    note.value = '';
    dlgErr.textContent = '';
    dlg.showModal();
    toSel.focus();
  });
  toSel.addEventListener('change', () => {
    otherBox.hidden = toSel.value !== 'other';
    if (!otherBox.hidden) other.focus();
  });
  dlg.querySelector('.cancel').addEventListener('click', () => dlg.close());
  dlg.querySelector('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!selected) return dlg.close();
    const v = toSel.value;
    const target = v === 'other' ? { toAgent: other.value.trim() } : v.startsWith('group:') ? { toGroup: v.slice(6) } : { toAgent: v.slice(6) };
    if (!target.toAgent && !target.toGroup) {
      dlgErr.textContent = t('transfer.pick');
      return;
    }
    try {
      await client.transfer(selected.id, { ...target, note: note.value.trim() });
      if (target.toAgent) learn({ agent: target.toAgent });
      dlg.close();
      pane();
      loadPage(true);
    } catch (e) {
      // Said in the dialog, which stays open for another choice.
      dlgErr.textContent = e.code === 'ERR_STATE' && target.toAgent ? t('transfer.offline', target.toAgent) : errText(e);
    }
  });

  // ---- canned replies: the desk's, into the composer -----------------------------

  const canned = document.querySelector('#canned');
  canned.addEventListener('change', () => {
    if (!canned.value) return;
    view.input.value = canned.value;
    view.input.focus();
    canned.value = '';
  });

  // ---- agent status -------------------------------------------------------------

  const status = document.querySelector('#status');
  status.addEventListener('change', () => act(() => client.setAgentStatus(status.value)));

  // ---- keyboard shortcuts ----------------------------------------------------------

  const help = document.querySelector('#helpdlg');
  document.querySelector('#helpbtn').addEventListener('click', () => help.showModal());
  const inField = (el) => el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
  document.addEventListener('keydown', (ev) => {
    if (ev.defaultPrevented || ev.isComposing) return;
    if (ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        const list = searchHits ? [] : ids;
        if (!list.length) return;
        ev.preventDefault();
        const at = selected ? list.indexOf(selected.id) : -1;
        const next = list[Math.max(0, Math.min(list.length - 1, at + (ev.key === 'ArrowDown' ? 1 : -1)))];
        if (next !== undefined) select(next);
        const a = listEl.querySelector(`a[data-id="${next}"]`);
        if (a) a.scrollIntoView({ block: 'nearest' });
      } else if (ev.code === 'Digit1' || ev.code === 'Digit2' || ev.code === 'Digit3') {
        ev.preventDefault();
        setTab(tabs[Number(ev.code.slice(5)) - 1], true);
      } else if (ev.code === 'KeyM' && selected) {
        ev.preventDefault();
        view.scroller.focus();
      } else if (ev.code === 'KeyC' && selected && view.writable) {
        ev.preventDefault();
        view.input.focus();
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || inField(ev.target)) return;
    if (ev.key === '/') {
      ev.preventDefault();
      searchBox.focus();
    } else if (ev.key === '?') {
      ev.preventDefault();
      help.showModal();
    }
  });

  // ---- notifications ------------------------------------------------------------------

  const notifier = new Notifier({
    client,
    store,
    unread: () => {
      let n = 0;
      for (const c of store.convs.values()) if (c.info && !c.notesOf && mode(c).writable && c.info.state) n += c.unread;
      return n;
    },
    isOpen: (id) => !!selected && selected.id === id,
    onOpen: (id) => select(id),
    who: (m) => m.sender,
  });
  document.querySelector('#helpbtn').before(notifier.controls());

  // ---- live updates: one list redraw per animation frame ------------------------

  let refetch = false;
  const redraw = frameBatcher(() => {
    if (refetch) {
      refetch = false;
      loadPage(true);
    } else drawList();
    const s = stateLabel(client.state, client.core.lastErr);
    setText(conn, s.text);
    conn.setAttribute('aria-label', `${t('connection')}: ${s.text}`);
    if (conn.className !== `conn ${s.cls}`) conn.className = `conn ${s.cls}`;
  });
  store.onChange((convs) => {
    // A conversation the list does not show yet: fetch the first page
    // again (list answers themselves only update what is shown).
    for (const id of convs) if (!ids.includes(id) && !store.conv(id).notesOf) refetch = true;
    if (selected && convs.has(selected.id)) pane();
    redraw();
  });
  client.on('event', (f) => {
    if (f.body === 'conv_update') {
      refetch = true;
      redraw();
    }
    if (f.body === 'agent_state') status.value = f.agent_state.status === 'AGENT_AWAY' ? 'AGENT_AWAY' : 'AGENT_ONLINE';
  });

  // ---- reports: for administrators ------------------------------------------------

  const reportsBtn = document.querySelector('#reportsbtn');
  const reportsEl = document.querySelector('#reports');
  function showReports(on) {
    reportsEl.hidden = !on;
    desk.hidden = on;
    reportsBtn.setAttribute('aria-expanded', String(on));
    const u = new URL(location.href);
    if (on) u.searchParams.set('view', 'reports');
    else u.searchParams.delete('view');
    history.replaceState(null, '', u.pathname + u.search);
    (on ? reportsEl.querySelector('#rfrom') : reportsBtn).focus();
  }
  const reports = new ReportsView({ client, root: reportsEl, onClose: () => showReports(false) });
  reportsBtn.addEventListener('click', () => showReports(reportsEl.hidden));

  await client.ready();
  // The REPORT frame answers administrators only: the button is theirs.
  const admin = client.core.session && client.core.session.role === 'ROLE_ADMIN';
  reportsBtn.hidden = !admin;
  // An administrator takes no conversations: no status of its own.
  document.querySelector('.mystatus').hidden = admin;
  if (admin && params.get('view') === 'reports') showReports(true);
  await loadPage(true);
  // A reload (or a link) with ?conv=ID opens that conversation.
  const start = Number(params.get('conv'));
  if (start) {
    select(start);
    if (params.get('seq')) view.jump(Number(params.get('seq')));
  }
  client
    .cannedList()
    .then((r) => {
      cannedItems = r.items;
      for (const c of r.items) canned.append(h('option', { value: c.text, text: c.title }));
    })
    .catch(() => (canned.hidden = true));
  window.__sb = { client, store, view, side, notifier, reports, select, selected: () => selected, loadPage };
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  document.body.dataset.error = String(e.message || e);
  toast(String(e.message || e));
});
