// Fills a conversation through the real server with the SDK (node, `ws`):
// a customer opens it with an agent and sends n messages.
import { WebSocket } from './deps.mjs';
import { Client } from '../../../web/src/sdk/index.js';
import { codec } from '../../../web/src/sdk/schema.js';
import { until } from './server.mjs';

export async function demoToken(srv, user, role) {
  const r = await fetch(`${srv.url}/demo/token?user=${user}&role=${role}`);
  return (await r.json()).token;
}

export async function sdkClient(srv, user, role, deviceId = `${user}-node`, opts = {}) {
  const c = new Client({ url: srv.wsUrl, token: await demoToken(srv, user, role), deviceId, codec, WebSocket, window: null, tickMs: 20, outboxMax: 20000, ...opts });
  c.start();
  await c.ready();
  return c;
}

/** Makes user one the server knows (a conversation names only those):
 * a device of its own says HELLO, then goes. */
export async function knownUser(srv, user, role) {
  const c = await sdkClient(srv, user, role, `${user}-seed`);
  c.stop();
}

/** Sends n texts ("msg 1".."msg n") into convId from client c; resolves
 * when every one is stored. */
export async function fill(c, convId, n, prefix = 'msg') {
  for (let i = 1; i <= n; i++) c.send(convId, { body: `${prefix} ${i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 4))}` });
  await until(() => c.stats().outboxLen === 0, 120000, `${n} messages stored`);
}

/** A new conversation of customer `user` with `agent`, holding n messages
 * from the customer (a client of its own, stopped after). Resolves with
 * the conversation. */
export async function seedConv(srv, user, agent, n) {
  await knownUser(srv, agent, 'agent');
  const c = await sdkClient(srv, user, 'customer');
  try {
    const conv = await c.open([agent]);
    await fill(c, conv.conv_id, n);
    return conv;
  } finally {
    c.stop();
  }
}
