"""MQTT 5 promises checked with paho-mqtt (PyPI), for the interop tests.

usage: paho_v5.py PORT CHECK, CHECK one of:
  nolocal    subscribe with no-local, publish to that topic, then another client
             publishes a sentinel; prints "echoed" or "not echoed"
  expiry     connect with clean start off and a 120 s session expiry, subscribe,
             disconnect, reconnect; prints "session_present=0|1"
  maxpacket  connect allowing 64-byte packets, subscribe; a second client
             publishes 200 bytes; prints "received N" or "not received"
"""
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

port, check = int(sys.argv[1]), sys.argv[2]


def client(client_id, **connect_props):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connected = threading.Event()
    c.subscribed = threading.Event()
    c.got = []
    c.arrived = threading.Condition()
    c.flags = {}

    def on_connect(cl, userdata, flags, reason_code, properties):
        cl.flags["session_present"] = int(flags.session_present)
        cl.connected.set()

    c.on_connect = on_connect
    c.on_subscribe = lambda cl, u, mid, rc, props: cl.subscribed.set()

    def on_message(cl, userdata, msg):
        with cl.arrived:
            cl.got.append(msg.payload)
            cl.arrived.notify_all()

    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    for k, v in connect_props.items():
        setattr(props, k, v)
    return c, props


def wait_for_payload(c, payload, timeout=10):
    """Until `payload` arrived at `c` (bounded); whether it did."""
    with c.arrived:
        return c.arrived.wait_for(lambda: payload in c.got, timeout)


def start(c, props, clean_start=True):
    c.connect("127.0.0.1", port, keepalive=30, clean_start=clean_start, properties=props)
    c.loop_start()
    if not c.connected.wait(10):
        print("no CONNACK", flush=True)
        sys.exit(1)


if check == "nolocal":
    c, props = client("nl-client")
    start(c, props)
    c.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True))
    c.subscribed.wait(10)
    c.publish("nl/t", "echo", qos=1).wait_for_publish(10)
    # A second client's message on the same topic marks "later": the broker
    # routes in order, so an echo of our own message would have come first.
    other, oprops = client("nl-other")
    start(other, oprops)
    other.publish("nl/t", "sentinel", qos=1).wait_for_publish(10)
    wait_for_payload(c, b"sentinel")
    print("echoed" if b"echo" in c.got else "not echoed", flush=True)
elif check == "expiry":
    c, props = client("exp-client", SessionExpiryInterval=120)
    start(c, props, clean_start=False)
    c.subscribe("exp/t", qos=1)
    c.subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    c2, props2 = client("exp-client", SessionExpiryInterval=120)
    start(c2, props2, clean_start=False)
    print(f"session_present={c2.flags['session_present']}", flush=True)
    c2.disconnect()
elif check == "maxpacket":
    c, props = client("mp-client", MaximumPacketSize=64)
    start(c, props)
    c.subscribe([("mp/t", 0), ("mp/done", 0)])
    c.subscribed.wait(10)
    p, pprops = client("mp-pub")
    start(p, pprops)
    p.publish("mp/t", b"x" * 200, qos=0)
    # A small message after it: the broker routes one publisher in order, so
    # once it arrived the big one has arrived too, or never will.
    p.publish("mp/done", b"done", qos=0)
    wait_for_payload(c, b"done")
    big = [m for m in c.got if m != b"done"]
    print(f"received {len(big[0])}" if big else "not received", flush=True)
else:
    sys.exit(f"unknown check {check}")
