#!/usr/bin/env python3
"""Submit one text-to-speech job to c2a-worker and wait for its result.

    python3 submit.py [--url AMQP_URL] [--queue QUEUE] [--timeout S] TEXT

Needs pika (Debian: python3-pika). Prints the result (JSON) on stdout and
exits 0 when the job succeeded, 1 when it failed, 3 when no result came.

The queue contract (README, "The queue contract"): c2a-worker declares its
queues itself, durable; a producer does not declare them (or declares them
passively, as here, to fail early when no worker ever ran). A job is a
persistent JSON message on the default exchange with the queue's name as
routing key; the result comes to reply_to with the job's correlation_id.
"""

import argparse
import json
import sys
import time
import uuid

import pika


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text")
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    ap.add_argument("--queue", default="c2a.jobs")
    ap.add_argument("--format", default="ogg")
    ap.add_argument("--voice", default="en-us")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    conn = pika.BlockingConnection(pika.URLParameters(args.url))
    ch = conn.channel()
    # Passive: the queue must exist (a worker declared it); never redeclare it
    # with other arguments (406 PRECONDITION_FAILED closes the channel).
    ch.queue_declare(args.queue, passive=True)
    # A private, exclusive reply queue; the broker names it.
    reply_to = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.confirm_delivery()  # publishes below raise if the broker refuses them

    job_id = f"example-{uuid.uuid4()}"
    job = {"id": job_id, "text": args.text, "format": args.format, "voice": args.voice}
    ch.basic_publish(
        exchange="", routing_key=args.queue, body=json.dumps(job).encode(),
        properties=pika.BasicProperties(
            content_type="application/json", delivery_mode=2,  # persistent
            message_id=job_id, correlation_id=job_id, reply_to=reply_to,
            timestamp=int(time.time())),  # its wait in the broker, in the metrics
        mandatory=True)

    result = None

    def on_result(channel, method, props, body):
        nonlocal result
        if props.correlation_id == job_id:
            result = json.loads(body)
            channel.stop_consuming()

    ch.basic_consume(reply_to, on_result, auto_ack=True)
    conn.call_later(args.timeout, ch.stop_consuming)
    ch.start_consuming()
    conn.close()
    if result is None:
        print(f"no result for {job_id} within {args.timeout:g} s", file=sys.stderr)
        return 3
    print(json.dumps(result))
    return 0 if result.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
