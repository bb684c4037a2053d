"""Cluster, publishing side: numbered messages to a quorum queue with a replica on each node.

Run: python publisher.py [COUNT] [--classic]    (default 3000; nodes from RABBITMQ_URLS)
A message is safe once RabbitMQ confirms it: a majority of the replicas have it on disk.
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
    args = [arg for arg in sys.argv[1:] if arg != "--classic"]
    queue, arguments = CLASSIC if "--classic" in sys.argv else QUORUM
    if len(args) > 1 or not all(arg.isdigit() for arg in args):
        sys.exit("Usage: python publisher.py [COUNT] [--classic]")
    count = int(args[0]) if args else 3000
    confirmed, resent, connected = 0, 0, False  # messages 1 to `confirmed` are safe
    while confirmed < count:
        try:
            with connect(nodes) as connection:
                connected = True
                channel = connection.channel()
                channel.queue_declare(queue=queue, durable=True, arguments=arguments)
                channel.confirm_delivery()  # basic_publish now waits for RabbitMQ's confirm
                while confirmed < count:
                    body = f"Message {confirmed + 1}"
                    try:  # delivery_mode 2: on disk (a quorum queue does it anyway)
                        channel.basic_publish(
                            "", queue, body, pika.BasicProperties(delivery_mode=2)
                        )
                    except pika.exceptions.NackError:  # the queue could not take it: again
                        print(f" [!] {body} refused (nack), sending it again")
                        time.sleep(1)
                        continue
                    confirmed += 1
                    print(f" [x] Confirmed {body}")
                    time.sleep(0.01)  # a pace to watch while you kill a node
        except pika.exceptions.AMQPConnectionError as error:  # its node went, or none answers
            if not connected:  # none answered the first time: a typo, or no cluster yet
                raise
            # The message in flight may be in the queue already: send it again, and accept
            # that the consumer may get it twice. Better twice than never.
            resent += 1
            print(f" [!] {error!r}: Message {confirmed + 1} unconfirmed, sending it again")
            time.sleep(1)  # then the nodes again, from the first
    print(f" [x] All {count} messages confirmed; {resent} sent again after a lost connection")


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
