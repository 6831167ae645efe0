"""A third-party MQTT client for the interop tests: paho-mqtt from PyPI.

usage: paho_client.py PORT CLIENT_ID KEEPALIVE
Connects over MQTT 3.1.1 to 127.0.0.1:PORT with the given keepalive (0 means
none), subscribes to paho/<id>, publishes "hello from paho" there at QoS 1,
and prints "received <payload>" once it comes back. Exits 1 on a timeout.
"""
import sys
import threading

import paho.mqtt.client as mqtt

port, client_id, keepalive = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
topic = f"paho/{client_id}"
got = threading.Event()
subscribed = threading.Event()
connack = {}


def on_connect(client, userdata, flags, reason_code, properties):
    connack["rc"] = str(reason_code)
    client.subscribe(topic, qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    subscribed.set()


def on_message(client, userdata, msg):
    print(f"received {msg.payload.decode()}", flush=True)
    got.set()


c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.connect("127.0.0.1", port, keepalive=keepalive)
c.loop_start()
if not subscribed.wait(10):
    print(f"no SUBACK (CONNACK: {connack.get('rc', 'none')})", flush=True)
    sys.exit(1)
c.publish(topic, "hello from paho", qos=1)
ok = got.wait(10)
print(f"connack {connack.get('rc')}", flush=True)
c.disconnect()
c.loop_stop()
sys.exit(0 if ok else 1)
