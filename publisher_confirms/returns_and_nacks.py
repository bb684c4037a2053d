"""Publisher confirms, the answers besides a plain ack: a message returned, and a nack.

Run: python returns_and_nacks.py
"""

import os
import signal
import sys

import pika

NOWHERE = "no_such_queue"  # the default exchange routes by queue name; no queue has this one
FULL_QUEUE = "confirms_full"


def main(params: pika.URLParameters) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()

    # 1. A message no queue takes is dropped, and still confirmed: the broker did all it was
    # asked. A confirm alone does not say that a queue has the message.
    channel.basic_publish(exchange="", routing_key=NOWHERE, body="Anyone?")
    print(" [x] 'Anyone?' was confirmed and dropped: no queue took it")

    # 2. mandatory=True: the broker returns such a message (Basic.Return) before the confirm,
    # and pika's BlockingChannel raises UnroutableError.
    try:
        channel.basic_publish(exchange="", routing_key=NOWHERE, body="Hello?", mandatory=True)
    except pika.exceptions.UnroutableError as error:
        back = error.messages[0].method  # the Basic.Return: why the message came back
        print(f" [!] 'Hello?' (mandatory) was returned: {back.reply_code} {back.reply_text}")

    # 3. A nack: the broker did not take the message. This queue holds one message and refuses
    # more (reject-publish). Classic, because a quorum queue checks its limit only after
    # taking a message, so it may take one more before it nacks.
    arguments = {"x-queue-type": "classic", "x-max-length": 1, "x-overflow": "reject-publish"}
    channel.queue_declare(queue=FULL_QUEUE, durable=True, arguments=arguments)
    channel.queue_purge(queue=FULL_QUEUE)
    for body in ("first", "second"):
        try:
            persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
            channel.basic_publish(
                exchange="", routing_key=FULL_QUEUE, body=body, properties=persistent
            )
            print(f" [x] '{body}' was confirmed: queue '{FULL_QUEUE}' has it")
        except pika.exceptions.NackError:
            print(f" [!] '{body}' was nacked: queue '{FULL_QUEUE}' is full (max length 1)")
    connection.close()


if __name__ == "__main__":  # the same in every chapter script: where, Ctrl+C, errors in one line
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl+C
    url = os.getenv("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2F")
    try:
        params = pika.URLParameters(url)
        params.stack_timeout = 5  # give up on a broker that does not answer in 5 s, or blocks us
        params.blocked_connection_timeout = params.blocked_connection_timeout or 30  # for 30 s
        main(params)
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        alarm = isinstance(error, pika.exceptions.ConnectionBlockedTimeout)
        why = "RabbitMQ is blocking publishers: a resource alarm" if alarm else repr(error)
        sys.exit(f" [!] {why} at {url.rpartition('@')[2]} (run 'make doctor' to diagnose)")
