#!/usr/bin/env node
// HTTPS client for the clearcap bpf tests (node's statically linked OpenSSL).
// usage: node node_tls_client.js PORT PATH TOKEN
// Prints one JSON line: {"pid", "local_port", "status", "body"}.
'use strict';
const https = require('https');

const [port, path, token] = process.argv.slice(2);
if (!port || !path) {
  console.error('usage: node_tls_client.js PORT PATH [TOKEN]');
  process.exit(2);
}

let localPort = null;
const req = https.request({
  hostname: '127.0.0.1',
  port: Number(port),
  path,
  method: 'GET',
  headers: { 'X-Clearcap-Token': token || '', Connection: 'close' },
  rejectUnauthorized: false,
  agent: false,
  timeout: 30000,
}, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    process.stdout.write(JSON.stringify({
      pid: process.pid,
      local_port: localPort,
      status: res.statusCode,
      body: Buffer.concat(chunks).toString('utf8'),
    }) + '\n');
  });
});
req.on('socket', (s) => {
  s.on('secureConnect', () => { localPort = s.localPort; });
});
req.on('timeout', () => { console.error('timeout'); process.exit(1); });
req.on('error', (e) => { console.error(String(e)); process.exit(1); });
req.end();
