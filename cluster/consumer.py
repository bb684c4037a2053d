"""Cluster, consuming side: take the messages from the replicated quorum queue through any node.

Run: python consumer.py [--classic]    (the nodes' addresses from RABBITMQ_URLS; Ctrl+C to stop)
When its node goes, it connects to the next one that answers and carries on.
"""

import os
import signal
import sys
import time

import pika

# A quorum queue with a replica on each of 3 nodes; or, with --classic, a classic queue: one
# copy, on the node through which it was declared.
QUORUM = ("replicated_queue", {"x-queue-type": "quorum", "x-quorum-initial-group-size": 3})
CLASSIC = ("classic_queue", {"x-queue-type": "classic"})


def connect(nodes: list[pika.URLParameters]) -> pika.BlockingConnection:
    """The first node that answers. (pika.BlockingConnection(nodes) would try them in turn
    too, but would not say which one it got.)"""
    for params in nodes:
        try:
            connection = pika.BlockingConnection(params)
            print(f" [*] Connected to {params.host}:{params.port}")
            return connection
        except pika.exceptions.AMQPConnectionError as error:
            failed = error
    raise failed


def main(nodes: list[pika.URLParameters]) -> None:
    if sys.argv[1:] not in ([], ["--classic"]):
        sys.exit("Usage: python consumer.py [--classic]")
    queue, arguments = CLASSIC if sys.argv[1:] else QUORUM

    def callback(ch, method, properties, body):
        again = " (redelivered)" if method.redelivered else ""  # its ack may have been lost
        print(f" [x] Received {body.decode(errors='backslashreplace')}{again}")
        ch.basic_ack(delivery_tag=method.delivery_tag)

    connected = False
    while True:
        try:
            with connect(nodes) as connection:
                connected = True
                channel = connection.channel()
                channel.queue_declare(queue=queue, durable=True, arguments=arguments)
                channel.basic_qos(prefetch_count=50)
                channel.basic_consume(queue=queue, on_message_callback=callback)
                print(" [*] Waiting for messages. To exit press CTRL+C")
                channel.start_consuming()
            # start_consuming() returns only if RabbitMQ cancels the consumer.
            sys.exit(" [!] RabbitMQ cancelled the consumer: was the queue deleted?")
        except pika.exceptions.AMQPConnectionError as error:  # its node went, or none answers
            if not connected:  # none answered the first time: a typo, or no cluster yet
                raise
            # What was delivered and not yet acked goes back to the queue, and comes again.
            print(f" [!] {error!r}: connecting again")
            time.sleep(1)  # then the nodes again, from the first


if __name__ == "__main__":  # the same in every cluster script: where, Ctrl+C, errors in one line
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl+C
    default = ",".join(f"amqp://guest:guest@localhost:{p}/%2F" for p in (5672, 5673, 5674))
    urls = os.getenv("RABBITMQ_URLS", default)  # make cluster PORT=5672, or the compose file
    try:
        nodes = [pika.URLParameters(url) for url in urls.split(",")]
        for params in nodes:
            params.stack_timeout = 5  # give up on a node that does not answer in 5 s
        main(nodes)
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        where = ",".join(url.rpartition("@")[2] for url in urls.split(","))
        sys.exit(f" [!] {error!r} at {where} (run 'make doctor' to diagnose)")
