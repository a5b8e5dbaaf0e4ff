// Preload (node --require) that keeps the gateway on the loopback interface.
// build/start-server.js calls serve({fetch, port}) with no hostname, so Node would bind every
// interface; every TCP listen in this process is pinned to 127.0.0.1 instead.
'use strict';
const net = require('net');

const HOST = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined && first.handle === undefined && first.fd === undefined) {
      args[0] = { ...first, host: HOST };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback]): replace or insert the host.
    if (args.length > 1 && (typeof args[1] === 'string' || args[1] === undefined || args[1] === null)) {
      args[1] = HOST;
    } else {
      args.splice(1, 0, HOST);
    }
  }
  return listen.apply(this, args);
};
