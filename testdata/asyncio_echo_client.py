"""The TCP echo client of the asyncio streams documentation.

Usage: python3 asyncio_echo_client.py HOST PORT [MESSAGE]

Only the host, port and message come from the command line; the rest is the
documentation's example as written.
"""
import asyncio
import sys


async def tcp_echo_client(message, host, port):
    reader, writer = await asyncio.open_connection(
        host, port)

    print(f'Send: {message!r}')
    writer.write(message.encode())
    await writer.drain()

    data = await reader.read(100)
    print(f'Received: {data.decode()!r}')

    print('Close the connection')
    writer.close()
    await writer.wait_closed()


if __name__ == '__main__':
    host, port = sys.argv[1], int(sys.argv[2])
    message = sys.argv[3] if len(sys.argv) > 3 else 'Hello World!'
    asyncio.run(tcp_echo_client(message, host, port))
