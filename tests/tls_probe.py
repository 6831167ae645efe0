"""A TLS client from Python's standard library (OpenSSL), for the
connection-diagnostics tests: it verifies the server against CAFILE and
SERVER_NAME (sent as SNI), optionally presents a client certificate, writes
its own key log, and on success sends an MQTT 3.1.1 CONNECT and DISCONNECT.

usage: tls_probe.py PORT CAFILE SERVER_NAME CLIENT_ID KEYLOG [CERT KEY]
prints "connack <return code>", or "handshake failed: <OpenSSL's reason>"
and exits 1.
"""
import socket
import ssl
import sys

port, cafile, server_name, client_id, keylog = sys.argv[1:6]
cert = sys.argv[6:8]

ctx = ssl.create_default_context(cafile=cafile)
ctx.keylog_filename = keylog
if cert:
    ctx.load_cert_chain(cert[0], cert[1])

with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
    try:
        tls = ctx.wrap_socket(raw, server_hostname=server_name)
    except ssl.SSLError as e:
        print("handshake failed:", e.reason or e, flush=True)
        sys.exit(1)
    cid = client_id.encode()
    # Protocol name "MQTT", level 4, clean session, keep-alive 30 s.
    body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(cid).to_bytes(2, "big") + cid
    tls.sendall(bytes([0x10, len(body)]) + body)
    connack = tls.recv(4)
    if len(connack) < 4 or connack[0] != 0x20:
        print("no connack:", connack.hex(), flush=True)
        sys.exit(1)
    print("connack", connack[3], flush=True)
    tls.sendall(b"\xe0\x00")
    tls.close()
