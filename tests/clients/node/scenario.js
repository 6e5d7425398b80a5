// Runs one scenario of the npm `etcd3` client (the client ETCD Manager is built on) against one server
// and prints what it saw as JSON: `node scenario.js SCENARIO HOST:PORT PREFIX`. Started by
// tests/clients/test_npm_etcd3.py once against real etcd and once against pyetcd. Revisions are
// printed relative to the scenario's first write, so the two servers' outputs compare equal.
'use strict';

const { Etcd3, Range } = require('etcd3');

const [scenario, endpoint, prefix] = process.argv.slice(2);
// The auth scenario runs on a member with auth on, where root's password is `rootpw`.
// TLS to an https member: CLIENT_CA, CLIENT_CERT and CLIENT_KEY name the PEM files.
const fs = require('fs');
const tls = process.env.CLIENT_CA ? {
  credentials: {
    rootCertificate: fs.readFileSync(process.env.CLIENT_CA),
    certChain: fs.readFileSync(process.env.CLIENT_CERT),
    privateKey: fs.readFileSync(process.env.CLIENT_KEY),
  },
} : {};
const scheme = process.env.CLIENT_CA ? 'https' : 'http';
const connect = (auth) => new Etcd3({ hosts: `${scheme}://${endpoint}`, ...tls, ...(auth ? { auth } : {}) });
const client = connect(scenario === 'auth' ? { username: 'root', password: 'rootpw' } : null);
const key = (name) => `${prefix}/${name}`;
let base = 0;
const rel = (revision) => (Number(revision) ? Number(revision) - base : 0);
const kv = (item) => [item.key.toString(), item.value.toString(), rel(item.create_revision),
  rel(item.mod_revision), Number(item.version)];
const errorOf = (err) => ({ error: err.constructor.name, message: err.message });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventsOf(watcher, count) {
  const events = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${events.length} of ${count} events`)), 10000);
    const take = (kind) => (item) => {
      events.push([kind, ...kv(item)]);
      if (events.length === count) {
        clearTimeout(timer);
        resolve();
      }
    };
    watcher.on('put', take('put')).on('delete', take('delete'));
  });
  return events;
}

const scenarios = {
  async kv() {
    const seen = {};
    await client.put(key('a')).value('1');
    await client.put(key('b')).value('2');
    seen.put_prev = kv((await client.put(key('a')).value('1b').getPrevious()));
    seen.get = await client.get(key('a')).string();
    seen.get_full = kv((await client.get(key('a')).exec()).kvs[0]);
    seen.missing = await client.get(key('nothing')).string();
    seen.prefix = await client.getAll().prefix(key('')).strings();
    seen.prefix_keys_desc = await client.getAll().prefix(key('')).sort('Key', 'Descend').keys();
    seen.count = await client.getAll().prefix(key('')).count();
    seen.exists = [await client.get(key('a')).exists(), await client.get(key('nothing')).exists()];
    seen.delete = Number((await client.delete().key(key('a')).exec()).deleted);
    seen.delete_again = Number((await client.delete().key(key('a')).exec()).deleted);
    seen.delete_prefix = (await client.delete().prefix(key('')).getPrevious()).map(kv);
    seen.after = await client.getAll().prefix(key('')).count();
    return seen;
  },

  async txn() {
    const seen = {};
    await client.put(key('x')).value('1');
    const done = await client.if(key('x'), 'Value', '==', '1').and(key('y'), 'Create', '==', 0)
      .then(client.put(key('y')).value('made'), client.get(key('x')))
      .else(client.put(key('y')).value('failed'))
      .commit();
    seen.success = [done.succeeded, done.responses.length, kv(done.responses[1].response_range.kvs[0])];
    const failed = await client.if(key('y'), 'Mod', '<', 1).then(client.put(key('z')).value('no'))
      .else(client.get(key('y'))).commit();
    seen.failure = [failed.succeeded, kv(failed.responses[0].response_range.kvs[0])];
    try {
      await client.if(key('x'), 'Version', '>', 0)
        .then(client.put(key('d')).value('1'), client.put(key('d')).value('2')).commit();
      seen.duplicate = 'accepted';
    } catch (err) {
      seen.duplicate = errorOf(err);
    }
    return seen;
  },

  async watch() {
    const seen = {};
    const live = await client.watch().prefix(key('w/')).create();
    const arriving = eventsOf(live, 3);
    await client.put(key('w/1')).value('a');
    await client.put(key('w/1')).value('b');
    await client.delete().key(key('w/1'));
    seen.live = await arriving;
    await live.cancel();
    const history = await client.watch().prefix(key('w/')).startRevision(String(base + 1)).create();
    seen.history = await eventsOf(history, 3);
    await history.cancel();
    return seen;
  },

  async lease() {
    const seen = {};
    const lease = client.lease(60, { autoKeepAlive: false });
    const id = await lease.grant();
    await lease.put(key('l1')).value('held');
    await lease.put(key('l2')).value('held');
    seen.key_lease_is_it = (await client.get(key('l1')).exec()).kvs[0].lease === id;
    const info = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
    seen.info = [Number(info.grantedTTL), Number(info.TTL) >= 55, info.keys.map(String).sort()];
    const alive = await lease.keepaliveOnce();
    seen.keepalive = [alive.ID === id, Number(alive.TTL)];
    await lease.revoke();
    seen.after_revoke = [await client.get(key('l1')).string(), lease.revoked(),
      Number((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL)];
    try {
      await client.leaseClient.leaseRevoke({ ID: id });
      seen.revoke_again = 'accepted';
    } catch (err) {
      seen.revoke_again = errorOf(err);
    }
    // Left without keep-alives, a short lease expires on the server and takes its key.
    const short = client.lease(1, { autoKeepAlive: false });
    const shortId = await short.grant();
    seen.short_granted = Number((await client.leaseClient.leaseTimeToLive({ ID: shortId })).grantedTTL);
    await short.put(key('short')).value('gone soon');
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && (await client.get(key('short')).exists())) {
      await sleep(200);
    }
    seen.expired = [await client.get(key('short')).exists(),
      Number((await client.leaseClient.leaseTimeToLive({ ID: shortId })).TTL)];
    short.release();
    return seen;
  },

  async lock() {
    const seen = {};
    const first = client.lock(key('lock')).ttl(20);
    await first.acquire();
    const held = (await client.getAll().prefix(key('lock')).exec()).kvs;
    seen.held = [held.length, held[0].lease === (await first.leaseId())];
    try {
      await client.lock(key('lock')).ttl(20).acquire();
      seen.second = 'acquired';
    } catch (err) {
      seen.second = err.constructor.name;
    }
    await first.release();
    seen.after_release = await client.getAll().prefix(key('lock')).count();
    const third = await client.lock(key('lock')).ttl(20).acquire();
    seen.third = (await client.getAll().prefix(key('lock')).count()) === 1;
    await third.release();
    return seen;
  },

  async cluster() {
    const status = await client.maintenance.status();
    const members = (await client.cluster.memberList({})).members;
    return {
      version: status.version,
      leader_is_member: status.leader === members[0].ID,
      members: members.map((m) => ({ name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs })),
      alarms: (await client.maintenance.alarm({ action: 'Get' })).alarms.length,
    };
  },

  // Users and roles through the client's own API, as ETCD Manager manages them.
  async auth() {
    const seen = {};
    const role = await client.role('npm-writer').create();
    await role.grant({ permission: 'Readwrite', range: Range.prefix(key('')) });
    await role.grant({ permission: 'Read', key: '/auth/key' });
    seen.permissions = (await role.permissions()).map((p) => [p.permission, p.range.start.toString(),
      p.range.end.toString('hex')]);
    const user = await client.user('npm-bob').create('bobpw');
    await user.addRole('npm-writer');
    seen.user_roles = (await user.roles()).map((r) => r.name);
    seen.users = (await client.getUsers()).map((u) => u.name).sort();
    seen.roles = (await client.getRoles()).map((r) => r.name).sort();
    try {
      await client.user('npm-bob').create('again');
      seen.user_again = 'created';
    } catch (err) {
      seen.user_again = errorOf(err);
    }
    const bob = connect({ username: 'npm-bob', password: 'bobpw' });
    try {
      await bob.put(key('mine')).value('by bob');
      seen.bob_own = await bob.get(key('mine')).string();
      seen.bob_read = await bob.get('/auth/key').string();
      for (const [name, call] of [['bob_write_outside', () => bob.put('/auth/key').value('x')],
        ['bob_read_outside', () => bob.get('/elsewhere').string()]]) {
        try {
          await call();
          seen[name] = 'ok';
        } catch (err) {
          seen[name] = errorOf(err);
        }
      }
      await role.revoke({ permission: 'Readwrite', range: Range.prefix(key('')) });
      try {
        await bob.put(key('mine')).value('after revoke');
        seen.after_revoke = 'ok';
      } catch (err) {
        seen.after_revoke = errorOf(err);
      }
    } finally {
      bob.close();
    }
    const wrong = connect({ username: 'npm-bob', password: 'wrong' });
    try {
      await wrong.get(key('mine')).string();
      seen.wrong_password = 'ok';
    } catch (err) {
      seen.wrong_password = errorOf(err);
    } finally {
      wrong.close();
    }
    await user.delete();
    await role.delete();
    seen.users_after = (await client.getUsers()).map((u) => u.name).sort();
    return seen;
  },
};

async function main() {
  try {
    base = Number((await client.put(key('start')).value('0').exec()).header.revision);
    const seen = await scenarios[scenario]();
    process.stdout.write(JSON.stringify(seen));
  } finally {
    client.close();
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
