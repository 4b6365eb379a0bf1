"""The streaming server: exec, attach and port-forward over HTTP upgrades.

The CRI ``Exec``/``Attach``/``PortForward`` calls only register a request and
return a URL; the client then connects there and upgrades to SPDY/3.1 or
WebSocket. The daemon uses three things from here::

    server, base_url = await server.start_streaming_server(config, backend, clock)
    url = server.url_for(tokens.ExecRequest(container_id, cmd, tty=..., stdin=...))
    await server.close()

with ``backend`` implementing ``backend.Backend`` on real containers.
"""
