// The agent workbench (served at /agent): the conversation list (queued /
// mine / closed, unread badges, tags, search; paged as it scrolls), the
// selected conversation with history, quote and reply, tags, canned
// replies, transfer and close, typing, customer info, and the agent's
// status (online / away).
import { params, connect, initLang, stateLabel, frameBatcher, h, toast, errText, fmtTime, fmtDateTime } from './common.js';
import { t } from './i18n.js';
import { ChatView } from './chatview.js';

const PAGE = 30;

async function main() {
  initLang(document.querySelector('#lang'));
  const user = params.get('user') || 'bob';
  document.querySelector('#me').textContent = user;
  const { client, store } = await connect(user, 'agent');
  const view = new ChatView({ store, root: document.querySelector('#chat'), staff: true, onAction });
  const listEl = document.querySelector('#convs');
  const sentinel = h('div.list-sentinel');
  const conn = document.querySelector('#conn');
  let tab = 'mine';
  let tagFilter = '';
  let ids = [];
  let cursor = '';
  let more = false;
  let loading = null;
  let gen = 0;
  let selected = null;
  let searchHits = null;

  // ---- the conversation list, a page at a time --------------------------------

  function query() {
    const q = { limit: PAGE, tag: tagFilter, mine: tab !== 'queued' };
    if (tab === 'queued') q.state = 'STATE_QUEUED';
    if (tab === 'closed') q.state = 'STATE_CLOSED';
    return q;
  }

  let localList = false;
  function localFilter(c) {
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
        localList = true;
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
  new IntersectionObserver((es) => es.some((e) => e.isIntersecting) && more && loadPage(false), { root: listEl, rootMargin: '200px' }).observe(sentinel);

  function convItem(c) {
    const i = c.info || {};
    const last = c.lastMessage;
    return h(
      'li.conv',
      { dataset: { id: c.id }, class: c === selected ? 'conv active' : 'conv', tabindex: 0 },
      h('div.row', null, h('b', { text: i.customer || [...c.members].find((m) => m !== user) || c.title }), c.unread ? h('span.badge', { text: c.unread > 99 ? '99+' : c.unread }) : null),
      h('div.last', { text: last ? (last.recalled ? t('recalled') : last.body) : '' }),
      h('div.row.small', null, h('span', { text: i.state ? t(`conv.${i.state.replace('STATE_', '').toLowerCase()}`, i.queue_position || '', i.agent || '') : '' }), h('span', { text: fmtTime(c.lastTs) })),
      c.tags.length ? h('div.tags', null, c.tags.map((x) => h('span.chip', { text: x }))) : null,
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
      els = searchHits.map((m) => h('li.conv.hit', { dataset: { id: m.conv_id, seq: m.seq } }, h('div.row', null, h('b', { text: m.sender }), h('span', { text: `#${m.conv_id}` })), h('div.last', { text: m.body })));
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
    els.push(sentinel);
    // The DOM is touched only where the list differs.
    const kids = listEl.children;
    let same = kids.length === els.length;
    for (let i = 0; same && i < els.length; i++) same = kids[i] === els[i];
    if (!same) listEl.replaceChildren(...els);
  }

  listEl.addEventListener('click', (ev) => {
    const li = ev.target.closest('li.conv');
    if (!li) return;
    select(Number(li.dataset.id));
    if (li.dataset.seq) view.jump(Number(li.dataset.seq));
  });

  for (const b of document.querySelectorAll('.tabs button'))
    b.addEventListener('click', () => {
      tab = b.dataset.tab;
      searchHits = null;
      for (const x of document.querySelectorAll('.tabs button')) x.classList.toggle('on', x === b);
      loadPage(true);
    });
  document.querySelector('#tagfilter').addEventListener('change', (ev) => {
    tagFilter = ev.target.value.trim();
    loadPage(true);
  });
  document.querySelector('#search').addEventListener('keydown', async (ev) => {
    if (ev.key !== 'Enter') return;
    const q = ev.target.value.trim();
    if (!q) {
      searchHits = null;
      drawList();
      return;
    }
    try {
      searchHits = (await client.search(0, q, 50)).messages;
      drawList();
    } catch (e) {
      toast(errText(e));
    }
  });

  // ---- the selected conversation ------------------------------------------------

  function select(id) {
    selected = store.conv(id);
    view.show(selected);
    drawList();
    drawPane();
  }

  const pane = frameBatcher(drawPane);
  let paneSig = '';
  const setText = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };
  function drawPane() {
    const c = selected;
    const head = document.querySelector('#convhead');
    const info = document.querySelector('#info');
    document.querySelector('#workspace').classList.toggle('none', !c);
    if (!c) return;
    const i = c.info || {};
    setText(head.querySelector('.who'), i.customer || [...c.members].find((m) => m !== user) || c.title);
    setText(head.querySelector('.st'), i.state ? t(`conv.${i.state.replace('STATE_', '').toLowerCase()}`, i.queue_position || '', i.agent || '') : '');
    const rows = [
      ['customer', i.customer || [...c.members].find((m) => m !== user) || ''],
      ['info.state', i.state ? i.state.replace('STATE_', '').toLowerCase() : ''],
      ['info.desk', i.desk],
      ['info.group', i.group],
      ['info.agent', i.agent],
      ['info.created', fmtDateTime(i.created_ts)],
      ['info.messages', Math.max(i.last_seq || 0, c.list.lastSeq())],
      ['info.members', [...c.members].join(', ')],
      ['info.lang', c.peerLang],
      ['info.tags', c.tags.join(', ')],
    ];
    // Rebuilt only when the tags or the set of rows change; otherwise
    // the values that changed (a burst: the message count) are written
    // in place.
    const shown = rows.filter(([, v]) => v);
    const sig = JSON.stringify([c.id, c.tags, shown.map(([k]) => k)]);
    if (sig !== paneSig) {
      paneSig = sig;
      const tags = head.querySelector('.convtags');
      tags.textContent = '';
      for (const x of c.tags) tags.append(h('span.chip', null, x, h('button', { type: 'button', dataset: { untag: x }, text: '×', 'aria-label': `${t('tag')} ${x}` })));
      info.textContent = '';
      infoValues = shown.map(([k, v]) => {
        const dd = h('dd', { text: String(v) });
        info.append(h('dt', { text: t(k) }), dd);
        return dd;
      });
    } else {
      shown.forEach(([, v], j) => setText(infoValues[j], String(v)));
    }
  }
  let infoValues = [];

  document.querySelector('#convhead').addEventListener('click', async (ev) => {
    const x = ev.target.closest('[data-untag]');
    if (!x || !selected) return;
    await act(() => client.tag(selected.id, 0, [], [x.dataset.untag]), () => (selected.tags = selected.tags.filter((y) => y !== x.dataset.untag)));
  });

  async function act(fn, after) {
    try {
      await fn();
      if (after) after();
      pane();
      loadPage(true);
    } catch (e) {
      toast(errText(e));
    }
  }

  document.querySelector('#addtag').addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter' || !selected) return;
    const tag = ev.target.value.trim();
    ev.target.value = '';
    if (tag) act(() => client.tag(selected.id, 0, [tag]), () => selected.tags.includes(tag) || selected.tags.push(tag));
  });
  document.querySelector('#transferbtn').addEventListener('click', () => {
    const to = document.querySelector('#transferto').value.trim();
    if (to && selected) act(() => client.transfer(selected.id, { toAgent: to }));
  });
  document.querySelector('#closebtn').addEventListener('click', () => selected && act(() => client.close(selected.id)));

  // A tag on one message: from the message's action bar.
  function onAction(a, seq) {
    if (a !== 'tagmsg' || !selected) return;
    const tag = prompt(t('tag.add'));
    if (tag) act(() => client.tag(selected.id, seq, [tag.trim()]));
  }

  // Canned replies: the desk's, into the composer.
  const canned = document.querySelector('#canned');
  canned.addEventListener('change', () => {
    if (!canned.value) return;
    const ta = document.querySelector('#chat textarea');
    ta.value = canned.value;
    ta.focus();
    canned.value = '';
  });

  // ---- agent status -------------------------------------------------------------

  const status = document.querySelector('#status');
  status.addEventListener('change', () => act(() => client.setAgentStatus(status.value)));

  // ---- live updates: one list redraw per animation frame ------------------------

  let refetch = false;
  const redraw = frameBatcher(() => {
    if (refetch) {
      refetch = false;
      loadPage(true);
    } else drawList();
    const s = stateLabel(client.state);
    setText(conn, s.text);
    if (conn.className !== `conn ${s.cls}`) conn.className = `conn ${s.cls}`;
  });
  store.onChange((convs, kinds) => {
    // A conversation the list does not show yet: fetch the first page
    // again (list answers themselves only update what is shown).
    for (const id of convs) if (!ids.includes(id)) refetch = true;
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

  await client.ready();
  loadPage(true);
  client
    .cannedList()
    .then((r) => {
      for (const c of r.items) canned.append(h('option', { value: c.text, text: c.title }));
    })
    .catch(() => (canned.hidden = true));
  window.__sb = { client, store, view, select, selected: () => selected, loadPage };
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  document.body.dataset.error = String(e.message || e);
  toast(String(e.message || e));
});
