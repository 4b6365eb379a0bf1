"""The streaming server: exec, attach and port-forward over HTTP upgrades.

The CRI ``Exec``/``Attach``/``PortForward`` calls only register a request and
return a URL; the client then connects there and upgrades to SPDY/3.1 or
WebSocket. The daemon (``crid.wiring``) uses four things from here::

    server = StreamingServer(backend, clock, address=..., port=..., limits=...)
    base_url = await server.start()
    url = server.url_for(tokens.ExecRequest(container_id, cmd, tty=..., stdin=...))
    await server.close()

with ``backend`` implementing ``backend.Backend`` on real containers.
"""
