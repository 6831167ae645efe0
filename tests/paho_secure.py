"""TLS, credentials and MQTT 5 request/response with paho-mqtt (PyPI), for
the interop tests.

usage: paho_secure.py PORT CHECK [CAFILE] ; CHECK one of:
  login USER PASSWORD   connect (MQTT 5); prints "connack <reason>"
  tls                   connect over TLS trusting CAFILE (MQTT 3.1.1), publish
                        and receive one message; prints "received <payload>"
  rr                    MQTT 5 request/response: a responder answers to the
                        request's response topic with its correlation data;
                        the requester publishes its requests with a topic
                        alias; prints "answer <correlation> <payload>" each
"""
import ssl
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, check = int(sys.argv[1]), sys.argv[2]


def connected(client_id, protocol=mqtt.MQTTv5, tls_ca=None, login=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    c.ready = threading.Event()
    c.subscribed = threading.Event()
    c.reason = None

    def on_connect(cl, userdata, flags, reason_code, properties):
        cl.reason = reason_code
        cl.ready.set()

    c.on_connect = on_connect
    c.on_connect_fail = lambda cl, u: cl.ready.set()
    c.on_subscribe = lambda cl, u, mid, rc, props: cl.subscribed.set()
    if tls_ca:
        c.tls_set(ca_certs=tls_ca, cert_reqs=ssl.CERT_REQUIRED)
    if login:
        c.username_pw_set(*login)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    c.ready.wait(10)
    return c


if check == "login":
    c = connected("paho-login", login=(sys.argv[3], sys.argv[4]))
    print("connack", c.reason, flush=True)
    c.loop_stop()
elif check == "tls":
    got = threading.Event()
    c = connected("paho-tls", protocol=mqtt.MQTTv311, tls_ca=sys.argv[3], login=("backend", "s3cret"))
    if c.reason is None or c.reason.is_failure:
        print("not connected:", c.reason, flush=True)
        sys.exit(1)
    c.on_message = lambda cl, u, m: (print("received", m.payload.decode(), flush=True), got.set())
    c.subscribe("secure/#", qos=1)
    c.subscribed.wait(10)
    c.publish("secure/hello", b"over-tls", qos=1).wait_for_publish(5)
    got.wait(10)
    c.disconnect()
    c.loop_stop()
elif check == "rr":
    responder = connected("paho-responder")

    def answer(cl, userdata, msg):
        p = msg.properties
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = p.CorrelationData
        cl.publish(p.ResponseTopic, b"42 C", qos=1, properties=props)

    responder.on_message = answer
    responder.subscribe("rr/thermostat/get", qos=1)
    responder.subscribed.wait(10)
    requester = connected("paho-requester")
    answers = []
    done = threading.Event()

    def on_answer(cl, userdata, msg):
        answers.append(msg.properties.CorrelationData.decode())
        print("answer", msg.properties.CorrelationData.decode(), msg.payload.decode(), flush=True)
        if len(answers) == 2:
            done.set()

    requester.on_message = on_answer
    requester.subscribe("rr/requester/reply", qos=1)
    requester.subscribed.wait(10)
    for k, topic in enumerate(["rr/thermostat/get", ""]):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "rr/requester/reply"
        props.CorrelationData = f"ask-{k + 1}".encode()
        props.TopicAlias = 4  # set with the first request, used alone by the second
        requester.publish(topic, b"status?", qos=1, properties=props).wait_for_publish(5)
    done.wait(10)
    for c in (requester, responder):
        c.disconnect()
        c.loop_stop()
else:
    sys.exit(f"unknown check {check}")
