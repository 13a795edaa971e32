"""The TCP echo server of the asyncio streams documentation.

Usage: python3 asyncio_echo_server.py HOST PORT [CLIENTS]

With PORT 0 the system picks the port. Once listening, it prints the
documentation's "Serving on ..." line and then "PORT <n>" on a line of its own,
so a test can connect. It serves CLIENTS connections (default 1), then closes
and exits, instead of serving forever; the handler is the documentation's.
"""
import asyncio
import sys


async def handle_echo(reader, writer):
    data = await reader.read(100)
    message = data.decode()
    addr = writer.get_extra_info('peername')

    print(f"Received {message!r} from {addr!r}")

    print(f"Send: {message!r}")
    writer.write(data)
    await writer.drain()

    print("Close the connection")
    writer.close()
    await writer.wait_closed()


async def main(host, port, clients):
    done = asyncio.Queue()

    async def handle(reader, writer):
        try:
            await handle_echo(reader, writer)
        finally:
            done.put_nowait(None)

    server = await asyncio.start_server(handle, host, port)

    addrs = ', '.join(str(sock.getsockname()) for sock in server.sockets)
    print(f'Serving on {addrs}')
    print(f'PORT {server.sockets[0].getsockname()[1]}', flush=True)

    async with server:
        for _ in range(clients):
            await done.get()


if __name__ == '__main__':
    host, port = sys.argv[1], int(sys.argv[2])
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    asyncio.run(main(host, port, clients))
