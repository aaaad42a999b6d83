"""The references of the ingress benchmark: the least an aiohttp webhook handler can do.

Run by `bench/pipeline_bench.py` as its own process (uvloop, like the services):
`python -m bench.minimal_ingress --port P [--publish --amqp-url URL --queue Q]`.

Both serve the same path shape as ingress (`POST /webhooks/omnidesk/{channel_id}/{secret}`), read
the body and decode it with msgspec into a Struct of the webhook's shape (400 if it does not fit).
- without `--publish`: answer at once (the bare HTTP + decode ceiling);
- with `--publish`: publish the body to a durable queue with aio-pika, persistent, on a channel
  with publisher confirms, and answer only once the broker confirmed it: the limit of durable
  acceptance on this stack, which ingress (channel lookup, secret check, validation, its message
  envelope, partition routing) is measured against;
- with `--publish --exchange E --partitions N` as well: publish to ingress's own exchange, routed
  to the chat's partition queue as ingress routes it; this tells the broker's share of the gap
  (N queues instead of one) from the Python's.
Prints `ready` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aio_pika
import msgspec
import uvloop
from aiohttp import web

Scalar = str | int | float | None


class Fields(msgspec.Struct, kw_only=True):
    email: Scalar = ""
    login: Scalar = ""
    name: Scalar = ""
    phone: Scalar = ""


class Visitor(msgspec.Struct, kw_only=True):
    id: Scalar = ""
    fields: Fields | None = None


class Message(msgspec.Struct, kw_only=True):
    kind: Scalar = "text"
    text: Scalar = ""


class Webhook(msgspec.Struct, kw_only=True):
    event: Scalar = "new_message"
    message: Message
    visitor: Visitor | None = None
    chat_id: Scalar = None


decoder = msgspec.json.Decoder(Webhook)


def route_of(webhook: Webhook, partitions: int) -> str:
    from omnibot.shared.topology import partition_of

    return f"p{partition_of(f'1:{webhook.chat_id}', partitions)}"


async def serve(
    port: int, amqp_url: str | None, queue: str | None, exchange_name: str | None, partitions: int
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connection = await aio_pika.connect_robust(amqp_url) if amqp_url else None
    exchange = None
    if connection is not None:
        channel = await connection.channel(publisher_confirms=True)
        if exchange_name:
            exchange = await channel.get_exchange(exchange_name, ensure=False)
        else:
            await channel.declare_queue(queue, durable=True)
            exchange = channel.default_exchange

    async def accept(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            webhook = decoder.decode(body)
        except msgspec.DecodeError as exc:
            return web.json_response({"error": "invalid_body", "message": str(exc)}, status=400)
        if exchange is not None:
            message = aio_pika.Message(
                body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type="application/json"
            )
            route = route_of(webhook, partitions) if exchange_name else queue or ""
            await exchange.publish(message, routing_key=route)  # returns once confirmed
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/webhooks/omnidesk/{channel_id}/{secret}", accept)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if connection is not None:
            await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", default="bench.minimal")
    parser.add_argument("--exchange", help="publish to this exchange, routed by partition, instead")
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    amqp_url = args.amqp_url if args.publish else None
    uvloop.run(serve(args.port, amqp_url, args.queue, args.exchange, args.partitions))


if __name__ == "__main__":
    main()
