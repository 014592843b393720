#!/usr/bin/env node
// Submit one text-to-speech job to c2a-worker and wait for its result.
//
//   node submit.js [--url AMQP_URL] [--queue QUEUE] [--timeout S] TEXT
//
// Needs amqplib (npm install, in this directory). Prints the result (JSON) on
// stdout and exits 0 when the job succeeded, 1 when it failed, 3 when no
// result came. The queue contract is in the README ("The queue contract"):
// the workers declare the queues; a producer publishes a persistent JSON
// message to the default exchange and reads the result from reply_to.
'use strict';

const crypto = require('crypto');
const amqp = require('amqplib');

function parseArgs(argv) {
  const a = {url: 'amqp://guest:guest@127.0.0.1:5672/%2f', queue: 'c2a.jobs',
             format: 'ogg', voice: 'en-us', timeout: 60, text: null};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k.startsWith('--')) {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${k} needs a value`);
      a[k.slice(2)] = k === '--timeout' ? Number(v) : v;
    } else {
      a.text = k;
    }
  }
  if (!a.text || !(a.timeout > 0)) throw new Error('usage: submit.js [--url U] [--queue Q] TEXT');
  return a;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const conn = await amqp.connect(args.url);
  try {
    const ch = await conn.createConfirmChannel();
    await ch.checkQueue(args.queue); // the workers declared it; never redeclare it
    const {queue: replyTo} = await ch.assertQueue('', {exclusive: true, autoDelete: true});
    const id = `example-${crypto.randomUUID()}`;
    const result = new Promise((resolve) => {
      ch.consume(replyTo, (msg) => {
        if (msg && msg.properties.correlationId === id) resolve(JSON.parse(msg.content));
      }, {noAck: true});
      setTimeout(() => resolve(null), args.timeout * 1000).unref();
    });
    const job = {id, text: args.text, format: args.format, voice: args.voice};
    ch.publish('', args.queue, Buffer.from(JSON.stringify(job)), {
      contentType: 'application/json', persistent: true, mandatory: true,
      messageId: id, correlationId: id, replyTo,
      timestamp: Math.floor(Date.now() / 1000), // its wait in the broker, in the metrics
    });
    await ch.waitForConfirms();
    const res = await result;
    if (res === null) {
      console.error(`no result for ${id} within ${args.timeout} s`);
      return 3;
    }
    console.log(JSON.stringify(res));
    return res.status === 'ok' ? 0 : 1;
  } finally {
    await conn.close();
  }
}

main().then((rc) => process.exit(rc), (err) => {
  console.error(`submit.js: ${err.message}`);
  process.exit(2);
});
