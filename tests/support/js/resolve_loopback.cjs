// Preloaded (`node --require`) by tests: host names ending in one of LOOPBACK_SUFFIXES
// (comma-separated, e.g. ".cdp.test") resolve to 127.0.0.1, as a wildcard DNS record would
// point them at the server; every other name resolves as usual. /etc/hosts is never touched.
'use strict';
const dns = require('node:dns');

const suffixes = (process.env.LOOPBACK_SUFFIXES || '').split(',').filter(Boolean);
const ours = (name) => typeof name === 'string' && suffixes.some((s) => name.toLowerCase().endsWith(s));
const original = dns.lookup;

dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  if (!ours(hostname)) {
    return original.call(dns, hostname, options, callback);
  }
  const all = typeof options === 'object' && options !== null && options.all;
  process.nextTick(() =>
    all ? callback(null, [{ address: '127.0.0.1', family: 4 }]) : callback(null, '127.0.0.1', 4),
  );
  return undefined;
};

const originalPromise = dns.promises.lookup;
dns.promises.lookup = async function lookup(hostname, options) {
  if (!ours(hostname)) {
    return originalPromise.call(dns.promises, hostname, options);
  }
  const all = typeof options === 'object' && options !== null && options.all;
  return all ? [{ address: '127.0.0.1', family: 4 }] : { address: '127.0.0.1', family: 4 };
};
