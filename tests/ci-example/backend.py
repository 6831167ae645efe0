"""The README's CI example backend: alert on fridges warmer than 8 °C.
usage: backend.py PORT"""
import json
import sys

import paho.mqtt.client as mqtt


def on_message(client, userdata, msg):
    reading = json.loads(msg.payload)
    if reading["celsius"] > 8.0:
        fridge = msg.topic.split("/")[1]
        client.publish(f"alerts/{fridge}", json.dumps({"celsius": reading["celsius"]}), qos=1)


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fridge-backend")
client.on_connect = lambda c, u, f, rc, p: c.subscribe("fridges/+/temp", qos=1)
client.on_message = on_message
client.connect_async("127.0.0.1", int(sys.argv[1]))
client.loop_forever(retry_first_connection=True)
