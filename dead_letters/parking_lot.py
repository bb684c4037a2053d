"""Dead letters: show the tasks waiting in 'parking_lot', and why they are there; with --move,
send them back to 'task_queue' to be tried again.

Run: python parking_lot.py [--move]
"""

import os
import signal
import sys

import pika

# What RabbitMQ adds when it dead-letters a message, and what retry_worker.py adds when it
# parks one. A task moved back goes without them: its history starts again.
HISTORY = ("x-death", "x-first-death-", "x-last-death-", "x-attempts", "x-error")


def reason(headers: dict) -> str:
    if "x-first-death-reason" in headers:  # dead-lettered by RabbitMQ
        first = headers["x-first-death-reason"], headers["x-first-death-queue"]
        return "x-first-death-reason: {}, from {}".format(*first)
    if "x-attempts" in headers:  # parked by retry_worker.py
        return f"x-attempts: {headers['x-attempts']}, last error: {headers['x-error']}"
    return "no dead-letter headers"


def main(params: pika.URLParameters) -> None:
    if sys.argv[1:] not in ([], ["--move"]):
        sys.exit("Usage: parking_lot.py [--move]")
    move = sys.argv[1:] == ["--move"]
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    classic = {"x-queue-type": "classic"}  # see poison_worker.py
    channel.queue_declare(queue="parking_lot", durable=True, arguments=classic)
    channel.confirm_delivery()  # a task moved back is removed from here once RabbitMQ has it
    count = 0
    # basic_get takes one message at a time; unacknowledged, it stays in the parking lot until
    # this channel closes, and the next basic_get returns the one after it.
    while (got := channel.basic_get(queue="parking_lot"))[0]:
        method, properties, body = got
        task, headers = body.decode(errors="backslashreplace"), properties.headers or {}
        count += 1
        if not move:
            print(f" [x] Parked {task} ({reason(headers)})")
            continue
        properties.headers = {k: v for k, v in headers.items() if not k.startswith(HISTORY)}
        # mandatory: should task_queue be gone, the publish fails and the task stays parked.
        channel.basic_publish("", "task_queue", body, properties, mandatory=True)
        channel.basic_ack(delivery_tag=method.delivery_tag)
        print(f" [x] Moved {task} back to task_queue")
    print(f" [*] {count} task(s) {'moved back' if move else 'in the parking lot'}")
    connection.close()  # the tasks only looked at go back to the parking lot, in order


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
