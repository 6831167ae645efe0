#!/usr/bin/env python3
"""Seeded wire mutation fuzzer for an MQTT broker on loopback.

Purpose
-------
Throws short, seeded, partly malformed MQTT 3.1.1 and MQTT 5 conversations at
a broker on 127.0.0.1 (the workbench's embedded rumqttd behind its MQTT-aware
tap, or any other broker such as mosquitto), then checks with paho-mqtt that
the broker still does its job (the PROBE): a QoS 1 message gets from a
publisher to a subscriber, and a client id the fuzzer hammered can still be
taken over.

A *case* is one TCP connection.  It sends a short sequence of frames: mostly a
CONNECT first (sometimes a broken one, sometimes none, sometimes a second one),
then PUBLISH / SUBSCRIBE / UNSUBSCRIBE / PUBACK / PUBREC / PUBREL / PUBCOMP /
PINGREQ / AUTH and server-only packets (CONNACK, SUBACK, UNSUBACK, PINGRESP),
some of them out of order or semantically invalid.  Client ids come from a
pool of 8 (plus the empty id), so takeovers happen constantly.  A fraction of
the frames is mutated (bit and byte flips, truncation, junk appended, a wrong
remaining length, a wrong property length, wrong fixed-header flags or type,
bytes inserted into or cut from the body, random bytes).  The bytes go out in
one write, one write per frame, dribbled in small pieces, or paced with reads
in between.  The connection ends with DISCONNECT, a close, an abrupt reset
(SO_LINGER 0) or by going quiet for a moment.  Whatever the broker answers is
read for a bounded time and discarded (only a CONNACK after an unmutated,
valid CONNECT is looked at, to prove the encoders produce valid frames).
Every socket operation has a timeout and every case is bounded in time;
refused and reset connections are expected and counted.

The fuzzing itself uses the standard library only; the probe needs
paho-mqtt 2.x (python3 -m pip install paho-mqtt==2.2.0).

Usage
-----
    python3 tests/fuzz_wire.py PORT --cases 20000 --seed 1
    python3 tests/fuzz_wire.py PORT --cases 5000 --seed 7 --version 5 --concurrency 8
    python3 tests/fuzz_wire.py PORT --cases 20000 --seed 1 --probe-every 1000
    python3 tests/fuzz_wire.py PORT --probe-only
    python3 tests/fuzz_wire.py PORT --cases 2000 --seed 3 --valid-only

--valid-only sends only valid frames in a valid order and never mutates: a
broker should not log a single protocol error for such a run.

The last line printed is the summary,
    fuzz: N cases (seed S) in T s, X connections refused, Y reset; probe v3.1.1 ok, probe v5 ok
(T is the time spent on the cases, without the probes).  The exit status is
0 when every probe passed, 1 when a probe failed (a `probe vX FAILED: ...`
line says why), 2 for a usage or environment error.

Replaying a case
----------------
Case I of seed S is generated from random.Random(S * 2**32 + I) alone: it
does not depend on the other cases, on --cases, on --concurrency or on timing.
(Not random.Random(S + I): with that, seed S+1 would replay seed S's cases
shifted by one, and runs with neighbouring seeds would be the same run.)
To replay:

    python3 tests/fuzz_wire.py PORT --seed S --case I -v        # one case, frames shown in hex
    python3 tests/fuzz_wire.py PORT --seed S --first A --cases K  # cases A .. A+K-1

Pass the same --version (and --mutate-rate) as the original run.  With
--probe-every M a failing probe prints the range of cases run since the last
good probe and the command that replays exactly that range; bisect it by
halving --first/--cases (a failure that needs concurrency to show may need the
original --concurrency too).
"""

import argparse
import errno
import random
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

HOST = "127.0.0.1"  # loopback only, by design

CONNECT_TIMEOUT = 1.0  # s, TCP connect
OP_TIMEOUT = 1.0  # s, any single send
CASE_LIMIT = 3.0  # s, hard bound on one case

# --------------------------------------------------------------------------
# Wire primitives
# --------------------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT, AUTH = 12, 13, 14, 15
PACKET_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
    6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
    11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}
VARINT_MAX = 268_435_455


def varint(n):
    """MQTT variable byte integer (remaining length, property lengths, ...)."""
    if not 0 <= n <= VARINT_MAX:
        raise ValueError(f"varint out of range: {n}")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def parse_varint(buf, pos):
    """(value, bytes used) of the varint at buf[pos:], or None if incomplete/over-long."""
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i + 1
        shift += 7
    return None


def u8(n):
    return bytes([n])


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def _raw(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def utf8(s):
    """Length-prefixed UTF-8 string; bytes are sent as they are (for invalid UTF-8)."""
    b = _raw(s)
    if len(b) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return u16(len(b)) + b


binary = utf8  # binary data has the same two-byte length prefix


# MQTT 5 properties: identifier -> value type
P_BYTE, P_U16, P_U32, P_VARINT, P_UTF8, P_BINARY, P_PAIR = range(7)
PAYLOAD_FORMAT, MESSAGE_EXPIRY, CONTENT_TYPE = 0x01, 0x02, 0x03
RESPONSE_TOPIC, CORRELATION_DATA, SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
SESSION_EXPIRY, ASSIGNED_CLIENT_ID, SERVER_KEEP_ALIVE = 0x11, 0x12, 0x13
AUTH_METHOD, AUTH_DATA, REQUEST_PROBLEM_INFO = 0x15, 0x16, 0x17
WILL_DELAY, REQUEST_RESPONSE_INFO, RESPONSE_INFO = 0x18, 0x19, 0x1A
SERVER_REFERENCE, REASON_STRING = 0x1C, 0x1F
RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS, MAXIMUM_QOS = 0x21, 0x22, 0x23, 0x24
RETAIN_AVAILABLE, USER_PROPERTY, MAXIMUM_PACKET_SIZE = 0x25, 0x26, 0x27
WILDCARD_SUB_AVAILABLE, SUB_ID_AVAILABLE, SHARED_SUB_AVAILABLE = 0x28, 0x29, 0x2A
PROPERTY_TYPES = {
    PAYLOAD_FORMAT: P_BYTE, MESSAGE_EXPIRY: P_U32, CONTENT_TYPE: P_UTF8,
    RESPONSE_TOPIC: P_UTF8, CORRELATION_DATA: P_BINARY, SUBSCRIPTION_ID: P_VARINT,
    SESSION_EXPIRY: P_U32, ASSIGNED_CLIENT_ID: P_UTF8, SERVER_KEEP_ALIVE: P_U16,
    AUTH_METHOD: P_UTF8, AUTH_DATA: P_BINARY, REQUEST_PROBLEM_INFO: P_BYTE,
    WILL_DELAY: P_U32, REQUEST_RESPONSE_INFO: P_BYTE, RESPONSE_INFO: P_UTF8,
    SERVER_REFERENCE: P_UTF8, REASON_STRING: P_UTF8, RECEIVE_MAXIMUM: P_U16,
    TOPIC_ALIAS_MAXIMUM: P_U16, TOPIC_ALIAS: P_U16, MAXIMUM_QOS: P_BYTE,
    RETAIN_AVAILABLE: P_BYTE, USER_PROPERTY: P_PAIR, MAXIMUM_PACKET_SIZE: P_U32,
    WILDCARD_SUB_AVAILABLE: P_BYTE, SUB_ID_AVAILABLE: P_BYTE, SHARED_SUB_AVAILABLE: P_BYTE,
}
PROPERTY_ENCODERS = {
    P_BYTE: u8, P_U16: u16, P_U32: u32, P_VARINT: varint, P_UTF8: utf8,
    P_BINARY: binary, P_PAIR: lambda kv: utf8(kv[0]) + utf8(kv[1]),
}


def properties(props):
    """MQTT 5 property block: varint length, then identifier + value per property."""
    out = bytearray()
    for ident, value in props:
        out += varint(ident)
        out += PROPERTY_ENCODERS[PROPERTY_TYPES[ident]](value)
    return varint(len(out)) + bytes(out)


class Frame:
    """One MQTT control packet: first byte and body; remaining length added on encode.

    Offsets of the property-length varints inside the body are kept so that
    a mutation can corrupt exactly those."""

    def __init__(self, first, label):
        self.first = first
        self.body = bytearray()
        self.props_at = []
        self.label = label
        self.valid = True  # the generator meant this frame to be valid

    def add(self, data):
        self.body += data
        return self

    def props(self, props):
        self.props_at.append(len(self.body))
        self.body += properties(props)
        return self

    def encode(self, first=None, body=None, remlen=None):
        body = self.body if body is None else body
        head = self.first if first is None else first
        rl = varint(len(body)) if remlen is None else remlen
        return bytes([head]) + rl + bytes(body)


# --------------------------------------------------------------------------
# Packet encoders (version 4 = MQTT 3.1.1, 5 = MQTT 5)
# --------------------------------------------------------------------------


def connect(version, client_id, clean=True, keepalive=30, will=None, username=None,
            password=None, props=(), proto_name=b"MQTT", level=None, flags_xor=0):
    """will: dict(topic, payload, qos, retain, props)."""
    flags = 0x02 if clean else 0
    if will is not None:
        flags |= 0x04 | (will["qos"] << 3) | (0x20 if will["retain"] else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    f = Frame(0x10, "CONNECT")
    f.add(binary(proto_name)).add(u8(version if level is None else level))
    f.add(u8(flags ^ flags_xor)).add(u16(keepalive))
    if version == 5:
        f.props(props)
    f.add(utf8(client_id))
    if will is not None:
        if version == 5:
            f.props(will["props"])
        f.add(utf8(will["topic"])).add(binary(will["payload"]))
    if username is not None:
        f.add(utf8(username))
    if password is not None:
        f.add(binary(password))
    return f


def connack(version, session_present=0, rc=0, props=()):
    f = Frame(0x20, "CONNACK").add(u8(session_present)).add(u8(rc))
    if version == 5:
        f.props(props)
    return f


def publish(version, topic, payload, qos=0, retain=False, dup=False, pid=None, props=()):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    f = Frame(first, f"PUBLISH q{qos}{' retain' if retain else ''}{' dup' if dup else ''}")
    f.add(utf8(topic))
    if qos:
        f.add(u16(pid))
    if version == 5:
        f.props(props)
    return f.add(payload)


def ack(kind, version, pid, reason=None, props=None):
    """PUBACK, PUBREC, PUBREL (flags 0b0010) or PUBCOMP; MQTT 5 reason code and properties optional."""
    f = Frame((kind << 4) | (0x02 if kind == PUBREL else 0), PACKET_NAMES[kind])
    f.add(u16(pid))
    if version == 5 and reason is not None:
        f.add(u8(reason))
        if props is not None:
            f.props(props)
    return f


def subscribe(version, pid, subs, props=()):
    """subs: [(filter, options byte)]."""
    f = Frame(0x82, "SUBSCRIBE").add(u16(pid))
    if version == 5:
        f.props(props)
    for topic_filter, options in subs:
        f.add(utf8(topic_filter)).add(u8(options))
    return f


def suback(version, pid, codes, props=()):
    f = Frame(0x90, "SUBACK").add(u16(pid))
    if version == 5:
        f.props(props)
    return f.add(bytes(codes))


def unsubscribe(version, pid, filters, props=()):
    f = Frame(0xA2, "UNSUBSCRIBE").add(u16(pid))
    if version == 5:
        f.props(props)
    for topic_filter in filters:
        f.add(utf8(topic_filter))
    return f


def unsuback(version, pid, codes, props=()):
    f = Frame(0xB0, "UNSUBACK").add(u16(pid))
    if version == 5:
        f.props(props).add(bytes(codes))
    return f


def pingreq():
    return Frame(0xC0, "PINGREQ")


def pingresp():
    return Frame(0xD0, "PINGRESP")


def disconnect(version, reason=None, props=None):
    f = Frame(0xE0, "DISCONNECT")
    if version == 5 and reason is not None:
        f.add(u8(reason))
        if props is not None:
            f.props(props)
    return f


def auth(version, reason=None, props=None):
    f = Frame(0xF0, "AUTH")
    if reason is not None:
        f.add(u8(reason))
        if props is not None and version == 5:
            f.props(props)
    return f


# --------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------

POOL = [f"fz-{i}" for i in range(7)] + ["fz-ü"]  # 8 ids, plus "" drawn separately
TOPICS = ["fz/a", "fz/b/c", "ü/temp", "fz/ü/温度", "fz/dev/1/state", "/fz", "fz//x", "fz/", "$fz/x"]
LONG_TOPIC_LENGTHS = [300, 4000, 65000]
FILTERS = ["#", "+", "fz/#", "fz/+/c", "a/+/b", "ü/temp", "ü/#", "+/+", "fz/dev/+/state",
           "/#", "$share/g/x", "$share/g/fz/#", "$share/h/ü/+"]
BAD_TOPICS = ["+", "#", "a/+/b", "fz/#", "", "fz/\x00nul", b"\xff\xfe/bad", b"\xed\xa0\x80/s", b"\xc3"]
BAD_FILTERS = ["a/#/b", "a#", "a+/b", "", "#/", "$share/g", "$share//x", "$share/g+/x",
               "fz/\x00", b"\xc3/x", b"\xff"]
TEXT_BITS = ["x", "ü", "温度", "🙂", "42", "-", " ", "é"]
BROKER_TOPIC_ALIAS_MAX = 10  # mosquitto's default; larger aliases count as invalid
CLIENT_DISCONNECT_REASONS = [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95,
                             0x96, 0x97, 0x98, 0x99]


class CaseGen:
    """Builds the frames of one case from its own random.Random.

    Tracks a little connection state (packet ids, QoS 2 ids awaiting PUBREL,
    topic aliases set, session expiry) so that frames meant to be valid are
    valid in sequence too.  When strict, every frame is valid and in order."""

    def __init__(self, rng, version, strict):
        self.r = rng
        self.v = version
        self.strict = strict
        self.last_pid = rng.randint(0, 65534)
        self.qos2_pending = []
        self.aliases = set()
        self.session_expiry = 0

    # small helpers ---------------------------------------------------------
    def chance(self, p):
        return self.r.random() < p

    def go_invalid(self, p=0.12):
        return not self.strict and self.chance(p)

    def pid(self):
        self.last_pid = self.last_pid % 65535 + 1
        return self.last_pid

    def text(self):
        return "".join(self.r.choice(TEXT_BITS) for _ in range(self.r.randint(0, 6)))

    def client_id(self):
        return "" if self.chance(1 / 9) else self.r.choice(POOL)

    def topic(self):
        if self.chance(0.03):
            n = self.r.choice(LONG_TOPIC_LENGTHS)
            return "fz/long/" + "x" * n
        return self.r.choice(TOPICS)

    def topic_filter(self):
        return self.r.choice(FILTERS)

    def payload(self):
        x = self.r.random()
        if x < 0.2:
            return b""
        if x < 0.95:
            return self.r.randbytes(self.r.randint(1, 64))
        return self.r.randbytes(self.r.randint(1000, 20000))

    def user_props(self, p=0.3):
        if not self.chance(p):
            return []
        return [(USER_PROPERTY, (self.text(), self.text())) for _ in range(self.r.randint(1, 3))]

    def message_props(self, props):
        """Properties a PUBLISH or a will may carry (appended to props); may replace the payload."""
        payload = None
        if self.chance(0.2):
            props.append((MESSAGE_EXPIRY, self.r.choice([0, 1, 5, 3600, 0xFFFFFFFF])))
        if self.chance(0.2):
            fmt = self.r.randint(0, 1)
            props.append((PAYLOAD_FORMAT, fmt))
            if fmt:
                payload = self.text().encode()
        if self.chance(0.15):
            props.append((CONTENT_TYPE, self.r.choice(["text/plain; charset=ü", "application/json", ""])))
        if self.chance(0.15):
            props.append((RESPONSE_TOPIC, self.r.choice(TOPICS)))
        if self.chance(0.15):
            props.append((CORRELATION_DATA, self.r.randbytes(self.r.randint(0, 16))))
        props += self.user_props(0.25)
        return payload

    # CONNECT ----------------------------------------------------------------
    def connect(self, valid=True):
        r, v = self.r, self.v
        kw = dict(client_id=self.client_id(), clean=self.chance(0.7),
                  keepalive=r.choice([0, 5, 30, 60, 65535]))
        if v == 4 and kw["client_id"] == "":
            kw["clean"] = True  # 3.1.1: an empty id needs a clean session
        if self.chance(0.3):
            will = dict(topic=self.topic(), payload=r.randbytes(r.randint(0, 32)),
                        qos=r.randint(0, 2), retain=self.chance(0.3), props=[])
            if v == 5:
                if self.chance(0.5):
                    will["props"].append((WILL_DELAY, r.choice([0, 1, 2, 5])))
                payload = self.message_props(will["props"])
                if payload is not None:
                    will["payload"] = payload
                r.shuffle(will["props"])
            kw["will"] = will
        if self.chance(0.3):
            kw["username"] = r.choice(["fuzz", "ü-user", ""])
        if self.chance(0.25) and ("username" in kw or v == 5):
            kw["password"] = r.randbytes(r.randint(0, 12))
        props = []
        if v == 5:
            if self.chance(0.6):
                # A session under an empty (server-assigned) id can never be
                # resumed or taken over: keep those short so they do not pile up.
                expiries = [0, 1, 5] if kw["client_id"] == "" else [0, 1, 5, 60, 0xFFFFFFFF]
                self.session_expiry = r.choice(expiries)
                props.append((SESSION_EXPIRY, self.session_expiry))
            if self.chance(0.4):
                props.append((RECEIVE_MAXIMUM, r.choice([1, 2, 10, 65535])))
            if self.chance(0.4):
                props.append((MAXIMUM_PACKET_SIZE, r.choice([128, 1024, 65536, VARINT_MAX])))
            if self.chance(0.4):
                props.append((TOPIC_ALIAS_MAXIMUM, r.randint(0, 20)))
            if self.chance(0.2):
                props.append((REQUEST_RESPONSE_INFO, r.randint(0, 1)))
            if self.chance(0.2):
                props.append((REQUEST_PROBLEM_INFO, r.randint(0, 1)))
            props += self.user_props()
            r.shuffle(props)
        kw["props"] = props
        how = None
        if not valid:
            how = self.break_connect(kw)
        f = connect(v, **kw)
        f.valid = valid
        bits = [f"v{v}", f"id={kw['client_id']!r}", "clean" if kw["clean"] else "keep"]
        bits += ["will"] * ("will" in kw) + ["user"] * ("username" in kw) + ["pass"] * ("password" in kw)
        f.label = "CONNECT " + " ".join(bits) + (f" [invalid: {how}]" if how else "")
        return f

    def break_connect(self, kw):
        """Make a CONNECT semantically invalid (well framed, wrong content); returns how."""
        r, v = self.r, self.v
        choices = ["reserved flag", "protocol name", "level", "will qos 3", "will bits without will",
                   "flag without field", "client id", "will topic"]
        if v == 4:
            choices += ["password without user", "empty id, no clean"]
        else:
            choices += ["auth method", "bad property", "duplicate property", "disallowed property"]
        how = r.choice(choices)
        if how == "reserved flag":
            kw["flags_xor"] = 0x01
        elif how == "protocol name":
            kw["proto_name"] = r.choice([b"MQIsdp", b"MQTX", b"mqtt", b""])
        elif how == "level":
            kw["level"] = r.choice([3, 6, 0, 255, 9 - v])  # 9 - v: the other version's level
        elif how == "will qos 3":
            kw.setdefault("will", dict(topic="fz/w", payload=b"w", qos=0, retain=False, props=[]))["qos"] = 3
        elif how == "will bits without will":
            kw.pop("will", None)
            kw["flags_xor"] = r.choice([0x08, 0x10, 0x20])
        elif how == "flag without field":
            kw["flags_xor"] = r.choice([0x40, 0x80, 0x04]) if not kw.get("will") else 0x04
        elif how == "client id":
            kw["client_id"] = r.choice([b"\xff\xfe", "fz-\x00", b"\xed\xa0\x80", "fz-" + "l" * 65000])
        elif how == "will topic":
            kw.setdefault("will", dict(topic="", payload=b"", qos=0, retain=False, props=[]))
            kw["will"]["topic"] = r.choice(["#", "fz/+", "", b"\xff"])
        elif how == "password without user":
            kw.pop("username", None)
            kw["password"] = b"secret"
        elif how == "empty id, no clean":
            kw["client_id"], kw["clean"] = "", False
        elif how == "auth method":
            kw["props"] = kw["props"] + [(AUTH_METHOD, r.choice(["SCRAM-SHA-1", "fz"])),
                                         (AUTH_DATA, r.randbytes(8))]
        elif how == "bad property":
            kw["props"] = kw["props"] + [r.choice([(RECEIVE_MAXIMUM, 0), (MAXIMUM_PACKET_SIZE, 0),
                                                   (REQUEST_PROBLEM_INFO, 2), (REQUEST_RESPONSE_INFO, 7)])]
        elif how == "duplicate property":
            kw["props"] = kw["props"] + [(SESSION_EXPIRY, 1), (SESSION_EXPIRY, 2)]
        elif how == "disallowed property":
            kw["props"] = kw["props"] + [r.choice([(TOPIC_ALIAS, 1), (SUBSCRIPTION_ID, 3),
                                                   (ASSIGNED_CLIENT_ID, "x"), (WILL_DELAY, 1)])]
        return how

    # PUBLISH ----------------------------------------------------------------
    def publish(self):
        r, v = self.r, self.v
        qos = r.choices([0, 1, 2], [4, 3, 3])[0]
        retain, dup = self.chance(0.2), qos > 0 and self.chance(0.15)
        topic, payload, props = self.topic(), self.payload(), []
        if v == 5:
            if self.chance(0.25):
                alias = r.randint(1, BROKER_TOPIC_ALIAS_MAX)
                if alias in self.aliases and self.chance(0.6):
                    topic = ""  # use the alias set earlier in this connection
                self.aliases.add(alias)
                props.append((TOPIC_ALIAS, alias))
            text = self.message_props(props)
            if text is not None:
                payload = text
            r.shuffle(props)
        pid = None
        how = None
        if self.go_invalid():
            choices = ["topic", "dup on qos 0", "qos 3", "packet id 0"]
            if v == 5:
                choices += ["subscription id", "alias 0", "alias too big", "unknown alias",
                            "duplicate property", "disallowed property", "format 1, not UTF-8",
                            "wildcard response topic"]
            how = r.choice(choices)
            if how == "topic":
                topic = r.choice(BAD_TOPICS)
            elif how == "dup on qos 0":
                qos, dup = 0, True
            elif how == "qos 3":
                qos = 3
            elif how == "packet id 0":
                qos, pid = max(qos, 1), 0
            elif how == "subscription id":
                props.append((SUBSCRIPTION_ID, r.randint(1, VARINT_MAX)))
            elif how == "alias 0":
                props = [p for p in props if p[0] != TOPIC_ALIAS] + [(TOPIC_ALIAS, 0)]
            elif how == "alias too big":
                props = [p for p in props if p[0] != TOPIC_ALIAS] + [(TOPIC_ALIAS, r.choice([11, 65535]))]
            elif how == "unknown alias":
                topic = ""
                props = [p for p in props if p[0] != TOPIC_ALIAS] + [(TOPIC_ALIAS, 10)]
            elif how == "duplicate property":
                props += [(MESSAGE_EXPIRY, 1), (MESSAGE_EXPIRY, 2)]
            elif how == "disallowed property":
                props.append(r.choice([(SESSION_EXPIRY, 1), (RECEIVE_MAXIMUM, 5), (WILL_DELAY, 1)]))
            elif how == "format 1, not UTF-8":
                props = [p for p in props if p[0] != PAYLOAD_FORMAT] + [(PAYLOAD_FORMAT, 1)]
                payload = b"\xff\xfe\xfd"
            elif how == "wildcard response topic":
                props.append((RESPONSE_TOPIC, "fz/#"))
        if qos and pid is None:
            pid = self.pid()
        if qos == 2 and how is None:
            self.qos2_pending.append(pid)
        f = publish(v, topic, payload, qos=qos, retain=retain, dup=dup, pid=pid, props=props)
        f.valid = how is None
        shown = topic if len(_raw(topic)) < 40 else f"{_raw(topic)[:20]!r}...({len(_raw(topic))} bytes)"
        f.label += f" topic={shown!r}" + (f" [invalid: {how}]" if how else "")
        return f

    # SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------
    def sub_options(self, topic_filter):
        r = self.r
        opts = r.randint(0, 2)
        if self.v == 5:
            shared = _raw(topic_filter).startswith(b"$share/")
            if not shared and self.chance(0.3):
                opts |= 0x04  # no local
            if self.chance(0.3):
                opts |= 0x08  # retain as published
            opts |= r.randint(0, 2) << 4  # retain handling
        return opts

    def subscribe(self):
        r, v = self.r, self.v
        subs = []
        for _ in range(r.randint(1, 4)):
            filt = self.topic_filter()
            subs.append((filt, self.sub_options(filt)))
        props = []
        if v == 5:
            if self.chance(0.3):
                props.append((SUBSCRIPTION_ID, r.choice([1, 127, 128, 16384, VARINT_MAX])))
            props += self.user_props(0.2)
        how = None
        if self.go_invalid():
            choices = ["filter", "qos 3", "reserved option bits", "no filters"]
            if v == 5:
                choices += ["retain handling 3", "no local on shared", "subscription id 0",
                            "two subscription ids"]
            how = r.choice(choices)
            i = r.randrange(len(subs))
            if how == "filter":
                subs[i] = (r.choice(BAD_FILTERS), subs[i][1])
            elif how == "qos 3":
                subs[i] = (subs[i][0], subs[i][1] | 0x03)
            elif how == "reserved option bits":
                subs[i] = (subs[i][0], subs[i][1] | (0xC0 if v == 5 else r.choice([0x04, 0x40, 0xFC])))
            elif how == "no filters":
                subs = []
            elif how == "retain handling 3":
                subs[i] = (subs[i][0], subs[i][1] | 0x30)
            elif how == "no local on shared":
                subs[i] = ("$share/g/x", subs[i][1] | 0x04)
            elif how == "subscription id 0":
                props = [p for p in props if p[0] != SUBSCRIPTION_ID] + [(SUBSCRIPTION_ID, 0)]
            elif how == "two subscription ids":
                props += [(SUBSCRIPTION_ID, 1), (SUBSCRIPTION_ID, 2)]
        f = subscribe(v, self.pid(), subs, props)
        f.valid = how is None
        f.label += " " + ",".join(repr(s[0]) for s in subs) + (f" [invalid: {how}]" if how else "")
        return f

    def unsubscribe(self):
        r = self.r
        filters = [self.topic_filter() for _ in range(r.randint(1, 3))]
        how = None
        if self.go_invalid():
            how = r.choice(["filter", "no filters"])
            filters = [r.choice(BAD_FILTERS)] if how == "filter" else []
        f = unsubscribe(self.v, self.pid(), filters, self.user_props(0.2))
        f.valid = how is None
        f.label += " " + ",".join(map(repr, filters)) + (f" [invalid: {how}]" if how else "")
        return f

    # acknowledgements and the rest -----------------------------------------
    def ack(self, kind):
        """An acknowledgement; PUBREL releases a QoS 2 publish of ours when there is one."""
        r, v = self.r, self.v
        if kind == PUBREL and self.qos2_pending:
            pid = self.qos2_pending.pop(0)
        else:
            pid = r.choice([r.randint(1, 65535), self.last_pid, 0 if self.go_invalid(0.3) else 1])
        reason = props = None
        if v == 5 and self.chance(0.5):
            if kind in (PUBACK, PUBREC):
                reason = r.choice([0x00, 0x10, 0x80, 0x83, 0x87, 0x91, 0x97])
            else:
                reason = r.choice([0x00, 0x92])
            if self.chance(0.4):
                props = [(REASON_STRING, self.text())] + self.user_props()
        f = ack(kind, v, pid, reason, props)
        f.valid = pid != 0
        f.label += f" id={pid}"
        return f

    def disconnect(self):
        r, v = self.r, self.v
        reason = props = None
        if v == 5 and self.chance(0.6):
            reason = r.choice(CLIENT_DISCONNECT_REASONS)
            if self.chance(0.4):
                props = []
                if self.session_expiry and self.chance(0.5):
                    props.append((SESSION_EXPIRY, r.choice([0, 1, 30])))
                props += [(REASON_STRING, self.text())] * self.chance(0.5) + self.user_props()
        f = disconnect(v, reason, props)
        if reason is not None:
            f.label += f" reason={reason:#04x}"
        return f

    def auth(self):
        r = self.r
        reason = r.choice([None, 0x00, 0x18, 0x19])
        props = [(AUTH_METHOD, "fz")] * self.chance(0.7) + [(AUTH_DATA, r.randbytes(4))] * self.chance(0.5)
        f = auth(self.v, reason, props)
        f.valid = self.v == 5 and reason is not None  # still unexpected without an auth method in CONNECT
        return f

    def server_packet(self):
        r, v = self.r, self.v
        kind = r.choice([CONNACK, SUBACK, UNSUBACK, PINGRESP])
        if kind == CONNACK:
            f = connack(v, r.randint(0, 1), r.choice([0, 0x80, 0x87]),
                        [(ASSIGNED_CLIENT_ID, "fz-x"), (TOPIC_ALIAS_MAXIMUM, 10)] * self.chance(0.5))
        elif kind == SUBACK:
            f = suback(v, r.randint(1, 65535), [r.choice([0, 1, 2, 0x80]) for _ in range(r.randint(1, 3))])
        elif kind == UNSUBACK:
            f = unsuback(v, r.randint(1, 65535), [0x00, 0x11][: r.randint(1, 2)])
        else:
            f = pingresp()
        f.valid = False  # well formed, but only a server may send it
        f.label += " (server-only)"
        return f

    def body_frame(self):
        """Any frame that may follow the CONNECT."""
        if self.strict:
            kinds = ["publish", "subscribe", "unsubscribe", "pingreq"] + ["pubrel"] * bool(self.qos2_pending)
            weights = [45, 20, 10, 10] + [15] * bool(self.qos2_pending)
        else:
            kinds = ["publish", "subscribe", "unsubscribe", "puback", "pubrec", "pubrel", "pubcomp",
                     "pingreq", "connect", "auth", "server", "disconnect", "other version"]
            weights = [34, 14, 7, 4, 3, 5, 3, 6, 4, 3, 6, 2, 3]
        kind = self.r.choices(kinds, weights)[0]
        if kind == "other version":
            self.v = 9 - self.v  # encode one frame the other version's way
            try:
                f = self.body_frame()
            finally:
                self.v = 9 - self.v
            f.valid = False
            f.label += " (other version's encoding)"
            return f
        return {
            "publish": self.publish, "subscribe": self.subscribe, "unsubscribe": self.unsubscribe,
            "puback": lambda: self.ack(PUBACK), "pubrec": lambda: self.ack(PUBREC),
            "pubrel": lambda: self.ack(PUBREL), "pubcomp": lambda: self.ack(PUBCOMP),
            "pingreq": pingreq, "connect": lambda: self.connect(valid=self.chance(0.6)),
            "auth": self.auth, "server": self.server_packet, "disconnect": self.disconnect,
        }[kind]()


# --------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------

MUTATIONS = ["bitflip", "bytes", "truncate", "extend", "remlen", "proplen", "flags", "type",
             "body insert", "body cut", "random"]
MUTATION_WEIGHTS = [16, 10, 12, 8, 14, 10, 10, 4, 6, 6, 4]


def bad_varint(rng, value):
    """A wrong encoding for a length: too large, too small, 5 bytes, non-minimal or the maximum."""
    how = rng.choice(["larger", "smaller", "5 bytes", "non-minimal", "max"])
    if how == "larger":
        return varint(min(VARINT_MAX, value + rng.choice([1, 2, 7, 100, 70000]))), how
    if how == "smaller" and value > 0:
        return varint(value - rng.randint(1, value)), how
    if how == "5 bytes":
        return rng.choice([b"\x80\x80\x80\x80\x01", b"\xff\xff\xff\xff\x7f", b"\x81\x80\x80\x80\x00"]), how
    if how == "non-minimal":
        enc = bytearray(varint(value))
        enc[-1] |= 0x80
        return bytes(enc) + b"\x00", how
    return b"\xff\xff\xff\x7f", "max"


def mutate(rng, frame):
    """(bytes, description) of a mutated copy of frame."""
    how = rng.choices(MUTATIONS, MUTATION_WEIGHTS)[0]
    data = frame.encode()
    if how == "proplen" and not frame.props_at:
        how = "bitflip"
    if how == "bitflip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b), how
    if how == "bytes":
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        return bytes(b), how
    if how == "truncate":
        return data[: rng.randrange(1, len(data))] if len(data) > 1 else b"", how
    if how == "extend":
        return data + rng.randbytes(rng.randint(1, 64)), how
    if how == "remlen":
        rl, what = bad_varint(rng, len(frame.body))
        return frame.encode(remlen=rl), f"remaining length {what}"
    if how == "proplen":
        at = rng.choice(frame.props_at)
        value, used = parse_varint(frame.body, at)
        enc, what = bad_varint(rng, value)
        body = frame.body[:at] + enc + frame.body[at + used:]
        return frame.encode(body=body), f"property length {what}"
    if how == "flags":
        return frame.encode(first=frame.first ^ rng.randint(1, 15)), how
    if how == "type":
        return frame.encode(first=(rng.randrange(16) << 4) | (frame.first & 0x0F)), how
    if how == "body insert":
        at = rng.randint(0, len(frame.body))
        body = frame.body[:at] + rng.randbytes(rng.randint(1, 8)) + frame.body[at:]
        return frame.encode(body=body), how
    if how == "body cut" and frame.body:
        at = rng.randrange(len(frame.body))
        return frame.encode(body=frame.body[:at] + frame.body[at + rng.randint(1, 8):]), how
    return rng.randbytes(rng.randint(1, 64)), "random"


# --------------------------------------------------------------------------
# A case: frames, how they are sent, how the connection ends
# --------------------------------------------------------------------------


class Case:
    def __init__(self, index, version):
        self.index = index
        self.version = version
        self.wire = []  # [(bytes, label, mutation or None)]
        self.send_mode = "burst"
        self.chunks = []  # dribble: [(size, pause s)]
        self.end = "close"
        self.quiet_s = 0.0
        self.read_before_reset = True
        self.valid_connect_first = False  # first frame is an unmutated, valid CONNECT
        self.strict = False  # only valid frames in a valid order (before mutation)

    def describe(self):
        lines = [f"case {self.index}: MQTT {'3.1.1' if self.version == 4 else '5'}, "
                 f"{'strict, ' if self.strict else ''}send {self.send_mode}, end {self.end}"]
        for data, label, how in self.wire:
            hexed = data[:96].hex(" ") + (" ..." if len(data) > 96 else "")
            lines.append(f"  {label}{f'  MUTATED: {how}' if how else ''}  ({len(data)} bytes)\n    {hexed}")
        return "\n".join(lines)


def case_seed(seed, index):
    """The seed of case index: distinct for every (seed, index) with index < 2**32."""
    return (seed << 32) + index


def build_case(seed, index, versions, mutate_rate, valid_only, read_s):
    r = random.Random(case_seed(seed, index))
    case = Case(index, r.choice(versions))
    # A strict case has only valid frames in a valid order (mutations aside), so
    # that it gets deeper into a session before anything goes wrong.
    case.strict = strict = valid_only or r.random() < 0.4
    gen = CaseGen(r, case.version, strict)
    frames = []
    start = "connect" if strict else r.choices(["connect", "broken", "none", "junk first"], [80, 8, 6, 6])[0]
    if start == "connect":
        frames.append(gen.connect())
    elif start == "broken":
        frames.append(gen.connect(valid=False))
    elif start == "junk first":
        frames += [gen.body_frame(), gen.connect()]
    frames += [gen.body_frame() for _ in range(r.randint(0, 8))]
    case.end = r.choices(["disconnect", "close", "reset", "quiet"], [35, 30, 20, 15])[0]
    if case.end == "disconnect":
        frames.append(gen.disconnect())
    rate = 0.0 if valid_only or r.random() < 0.35 else mutate_rate
    for i, f in enumerate(frames):
        if r.random() < rate:
            data, how = mutate(r, f)
        else:
            data, how = f.encode(), None
            if i == 0 and start == "connect" and f.valid:
                case.valid_connect_first = True
        case.wire.append((data, f.label, how))
    case.send_mode = r.choices(["burst", "frames", "dribble", "paced"], [40, 30, 15, 15])[0]
    if case.send_mode == "dribble":
        case.chunks = [(r.randint(1, 8), 0.0005 if r.random() < 0.2 else 0.0) for _ in range(24)]
    case.quiet_s = r.uniform(0.005, read_s)
    case.read_before_reset = r.random() < 0.5
    return case


# --------------------------------------------------------------------------
# Running a case
# --------------------------------------------------------------------------


class Conn:
    """A socket with a case deadline and a total read budget; what is read is
    discarded (only the first bytes are kept, for the CONNACK check)."""

    def __init__(self, sock, deadline, read_budget):
        self.sock = sock
        self.deadline = deadline
        self.read_left = read_budget
        self.head = bytearray()  # first bytes the broker sent
        self.received = 0
        self.eof = False

    def send(self, data):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("case time limit")
        self.sock.settimeout(min(OP_TIMEOUT, left))
        self.sock.sendall(data)

    def read(self, budget, idle=None, wait_first=False):
        """Read for up to budget s (within what is left of the case's read budget);
        stop at EOF, or after idle s without data (when wait_first, the idle rule
        starts once something arrived)."""
        start = time.monotonic()
        try:
            self._read(min(start + budget, start + self.read_left, self.deadline), idle, wait_first)
        finally:
            self.read_left -= time.monotonic() - start

    def _read(self, end, idle, wait_first):
        while not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                return
            use_idle = idle is not None and not (wait_first and self.received == 0)
            wait = min(left, idle) if use_idle else left
            self.sock.settimeout(wait)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                if use_idle and wait < left:
                    return
                continue
            if not chunk:
                self.eof = True
                return
            self._keep(chunk)

    def salvage(self):
        """After a reset: take what the broker sent before it, still queued here, without waiting."""
        try:
            self.sock.setblocking(False)
            while not self.eof:
                chunk = self.sock.recv(65536)
                self.eof = not chunk
                self._keep(chunk)
        except OSError:
            pass

    def _keep(self, chunk):
        if len(self.head) < 16:
            self.head += chunk[: 16 - len(self.head)]
        self.received += len(chunk)


def connack_code(head):
    """Reason code of a CONNACK at the start of head, None if head does not start with one."""
    if len(head) < 2 or head[0] != 0x20:
        return None
    rl = parse_varint(head, 1)
    if rl is None or len(head) < 1 + rl[1] + 2:
        return None
    return head[1 + rl[1] + 1]


def run_case(port, case, read_s, idle_s):
    """Play one case; a Counter of what happened."""
    c = Counter(cases=1, frames=len(case.wire), mutated=sum(1 for w in case.wire if w[2]),
                frame_bytes=sum(len(w[0]) for w in case.wire))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn = Conn(sock, time.monotonic() + CASE_LIMIT, read_s)
    read_at_end = not (case.end == "reset" and not case.read_before_reset)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect((HOST, port))
        if case.send_mode == "burst":
            conn.send(b"".join(w[0] for w in case.wire))
        elif case.send_mode in ("frames", "paced"):
            for data, _, _ in case.wire:
                if data:
                    conn.send(data)
                if case.send_mode == "paced":
                    conn.read(idle_s, idle_s)
        else:  # dribble: small pieces first, then the rest in one write
            data = b"".join(w[0] for w in case.wire)
            pos = 0
            for size, pause in case.chunks:
                if pos >= len(data):
                    break
                conn.send(data[pos: pos + size])
                pos += size
                if pause:
                    time.sleep(pause)
            if pos < len(data):
                conn.send(data[pos:])
        if case.end == "quiet":
            conn.read(case.quiet_s)
        elif read_at_end:
            conn.read(read_s, idle_s, wait_first=bool(case.wire) and case.wire[0][1].startswith("CONNECT"))
    except ConnectionRefusedError:
        c["refused"] += 1
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        c["reset"] += 1
        conn.salvage()
    except TimeoutError:
        c["timeout"] += 1
    except OSError as e:
        c[f"error {errno.errorcode.get(e.errno, e.errno)}"] += 1
    finally:
        if case.end == "reset":
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        sock.close()
    c["bytes in"] += conn.received
    c["broker closed"] += conn.eof
    if case.valid_connect_first and read_at_end and not c["refused"]:
        c["valid connects"] += 1
        rc = connack_code(conn.head)
        if rc == 0:
            c["connack success"] += 1
        elif rc is not None:
            c[f"connack rc {rc:#04x}"] += 1
        elif conn.head:
            c["connack other"] += 1
        else:
            c["connack none"] += 1
    return c


# --------------------------------------------------------------------------
# The probe (paho-mqtt)
# --------------------------------------------------------------------------

PROBE_TIMEOUT = 10.0


class ProbeError(Exception):
    pass


class ProbeClient:
    def __init__(self, mqtt, port, client_id, version):
        self.mqtt, self.port, self.version = mqtt, port, version
        proto = mqtt.MQTTv311 if version == 4 else mqtt.MQTTv5
        self.name = client_id
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=proto, reconnect_on_failure=False)
        self.connected, self.subscribed = threading.Event(), threading.Event()
        self.disconnected, self.got = threading.Event(), threading.Event()
        self.connack_rc = self.granted = None
        self.payloads = []
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.on_disconnect = lambda *a: self.disconnected.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack_rc = reason_code
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.granted = reason_codes
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        self.payloads.append(msg.payload)
        self.got.set()

    def start(self):
        extra = {"clean_start": True} if self.version == 5 else {}
        try:
            self.c.connect(HOST, self.port, keepalive=30, **extra)
        except OSError as e:
            raise ProbeError(f"{self.name}: connect: {e}") from None
        self.c.loop_start()
        if not self.connected.wait(PROBE_TIMEOUT):
            raise ProbeError(f"{self.name}: no CONNACK within {PROBE_TIMEOUT:.0f} s")
        if self.connack_rc.is_failure:
            raise ProbeError(f"{self.name}: CONNACK refused: {self.connack_rc}")

    def stop(self):
        try:
            self.c.disconnect()
        except Exception:  # already gone; nothing to clean up
            pass
        self.c.loop_stop()


def probe(port, version, takeover_id):
    """None if the broker passes, else what went wrong."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        print("the probe needs paho-mqtt: python3 -m pip install paho-mqtt==2.2.0", file=sys.stderr)
        sys.exit(2)
    token = uuid.uuid4().hex[:12]
    topic = f"fz-probe/{token}"
    clients = []

    def client(client_id):
        pc = ProbeClient(mqtt, port, client_id, version)
        clients.append(pc)
        pc.start()
        return pc

    try:
        sub = client(f"fz-probe-sub-{token}")
        sub.c.subscribe(topic, qos=1)
        if not sub.subscribed.wait(PROBE_TIMEOUT):
            raise ProbeError(f"subscriber: no SUBACK within {PROBE_TIMEOUT:.0f} s")
        if not sub.granted or sub.granted[0].is_failure:
            raise ProbeError(f"subscriber: SUBACK refused: {sub.granted}")
        pub = client(f"fz-probe-pub-{token}")
        info = pub.c.publish(topic, token.encode(), qos=1)
        info.wait_for_publish(PROBE_TIMEOUT)
        if not info.is_published():
            raise ProbeError(f"publisher: no PUBACK within {PROBE_TIMEOUT:.0f} s")
        if not sub.got.wait(PROBE_TIMEOUT):
            raise ProbeError(f"subscriber: QoS 1 message not received within {PROBE_TIMEOUT:.0f} s")
        if sub.payloads[0] != token.encode():
            raise ProbeError(f"subscriber: got {sub.payloads[0]!r}, expected {token!r}")
        old = client(takeover_id)
        new = client(takeover_id)  # takes the id over; start() checked its CONNACK
        if not old.disconnected.wait(PROBE_TIMEOUT):
            raise ProbeError(f"takeover of {takeover_id!r}: the old connection was not closed "
                             f"within {PROBE_TIMEOUT:.0f} s")
        if new.disconnected.is_set():
            raise ProbeError(f"takeover of {takeover_id!r}: the new connection was closed")
        return None
    except ProbeError as e:
        return str(e)
    finally:
        for pc in clients:
            pc.stop()


def run_probes(port, versions, round_no):
    """{version: None or failure reason}; each round takes over a different pool id."""
    return {v: probe(port, v, POOL[(round_no * len(versions) + i) % len(POOL)])
            for i, v in enumerate(versions)}


def probe_text(results):
    return ", ".join(f"probe {'v3.1.1' if v == 4 else 'v5'} {'ok' if why is None else 'FAILED'}"
                     for v, why in results.items())


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


class FuzzerBug(Exception):
    """A bug in this script (not in the broker) while playing a case."""


def parse_args(argv):
    p = argparse.ArgumentParser(description="Seeded MQTT wire mutation fuzzer (loopback only).",
                                epilog="Replay one case: --seed S --case I -v")
    p.add_argument("port", type=int, help="the broker's port on 127.0.0.1")
    p.add_argument("--cases", type=int, default=1000, help="how many cases (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="non-negative (default 1)")
    p.add_argument("--first", type=int, default=0, help="index of the first case (default 0)")
    p.add_argument("--case", type=int, help="replay this one case only")
    p.add_argument("--version", choices=["4", "5", "both"], default="both",
                   help="4 = MQTT 3.1.1, 5 = MQTT 5, both (default): each case picks one")
    p.add_argument("--concurrency", type=int, default=4, help="connections in flight (default 4)")
    p.add_argument("--mutate-rate", type=float, default=0.25,
                   help="share of frames mutated in a mutating case (default 0.25; 35%% of cases mutate nothing)")
    p.add_argument("--valid-only", action="store_true", help="only valid frames in a valid order, no mutations")
    p.add_argument("--read-ms", type=float, default=50.0, help="read budget per case (default 50)")
    p.add_argument("--idle-ms", type=float, default=3.0,
                   help="stop reading after this long without data (default 3)")
    p.add_argument("--probe-every", type=int, default=0, metavar="M", help="probe after every M cases too")
    p.add_argument("--probe-only", action="store_true", help="run only the probe")
    p.add_argument("--no-probe", action="store_true", help="skip the probe")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case's frames")
    a = p.parse_args(argv)
    if a.case is not None:
        a.first, a.cases = a.case, 1
    if not 0 < a.port < 65536 or a.concurrency < 1 or min(a.cases, a.probe_every, a.seed, a.first) < 0 \
            or a.first + a.cases > 2**32:
        p.error("port, --concurrency, --cases, --probe-every, --seed or --first/--case out of range")
    return a


def main(argv=None):
    a = parse_args(argv)
    versions = [4, 5] if a.version == "both" else [int(a.version)]
    if a.probe_only:
        results = run_probes(a.port, versions, 0)
        print(probe_text(results), flush=True)
        return report_failures(a, results, None)

    read_s, idle_s = a.read_ms / 1000, a.idle_ms / 1000
    total = Counter()
    examples = {}  # outcome -> the first few case indices that had it, to replay
    lock = threading.Lock()
    print_lock = threading.Lock()
    run_start = time.monotonic()
    progress = [run_start]  # when progress was last reported

    def one(index):
        try:
            case = build_case(a.seed, index, versions, a.mutate_rate, a.valid_only, read_s)
            c = run_case(a.port, case, read_s, idle_s)
        except Exception as e:
            raise FuzzerBug(f"seed {a.seed} case {index}") from e
        if a.verbose:
            with print_lock:
                outcome = ", ".join(f"{k}" for k in ("refused", "reset", "timeout", "broker closed") if c[k])
                print(case.describe() + f"\n  -> {c['bytes in']} bytes back{'; ' + outcome if outcome else ''}",
                      flush=True)
        with lock:
            total.update(c)
            for key in c:
                if key in NOTABLE or key.startswith(("connack rc", "error ")):
                    if len(examples.setdefault(key, [])) < 5:
                        examples[key].append(index)
            now = time.monotonic()
            if now - progress[0] >= 10 and not a.verbose:
                progress[0] = now
                print(f"fuzz: {total['cases']}/{a.cases} cases after {now - run_start:.0f} s",
                      file=sys.stderr, flush=True)

    step = a.probe_every or a.cases or 1
    results, last_good = {}, a.first
    elapsed = 0.0
    with ThreadPoolExecutor(max_workers=a.concurrency) as pool:
        for round_no, start in enumerate(range(a.first, a.first + a.cases, step)):
            stop = min(start + step, a.first + a.cases)
            t0 = time.monotonic()
            for chunk in range(start, stop, 5000):  # bounded number of futures at a time
                list(pool.map(one, range(chunk, min(chunk + 5000, stop))))
            elapsed += time.monotonic() - t0
            if a.no_probe or (a.probe_every == 0 and stop < a.first + a.cases):
                continue
            results = run_probes(a.port, versions, round_no)
            if any(why is not None for why in results.values()):
                summary(a, total, examples, elapsed, results)
                return report_failures(a, results, (last_good, stop))
            last_good = stop
    if not results and not a.no_probe:  # no cases at all
        results = run_probes(a.port, versions, 0)
    summary(a, total, examples, elapsed, results)
    return report_failures(a, results, (last_good, a.first + a.cases) if a.cases else None)


NOTABLE = ("timeout", "connack none", "connack other")


def summary(a, t, examples, elapsed, results):
    rate = t["cases"] / elapsed if elapsed else 0.0
    errors = ", ".join(f"{n} {k}" for k, n in sorted(t.items()) if k.startswith("error ") or k == "timeout")
    print(f"fuzz: {t['frames']} frames ({t['mutated']} mutated, {t['frame_bytes']} bytes), "
          f"{t['bytes in']} bytes back; the broker closed {t['broker closed']} connections; "
          f"{errors or 'no timeouts or other socket errors'}")
    refusals = ", ".join(f"{n} {k}" for k, n in sorted(t.items())
                         if k.startswith("connack ") and k != "connack success")
    print(f"fuzz: unmutated valid CONNECT first: {t['connack success']} of {t['valid connects']} "
          f"got CONNACK success{' (' + refusals + ')' if refusals else ''}")
    if examples:
        shown = "; ".join(f"{k}: {', '.join(map(str, sorted(v)))}" for k, v in sorted(examples.items()))
        print(f"fuzz: cases to replay with --case (the first few of each): {shown}")
    print(f"fuzz: {rate:.0f} cases/s with {a.concurrency} connection{'s' * (a.concurrency != 1)} in flight")
    probes = probe_text(results) if results else "probe skipped"
    print(f"fuzz: {t['cases']} cases (seed {a.seed}) in {elapsed:.1f} s, {t['refused']} connections refused, "
          f"{t['reset']} reset; {probes}", flush=True)


def report_failures(a, results, case_range):
    """Print one line per failed probe; the exit status."""
    failed = False
    for v, why in results.items():
        if why is None:
            continue
        failed = True
        name = "v3.1.1" if v == 4 else "v5"
        where = ""
        if case_range is not None:
            where = f" (after cases {case_range[0]}..{case_range[1] - 1}, run since the last good probe)"
        print(f"probe {name} FAILED: {why}{where}", flush=True)
    if failed and case_range is not None:
        print(f"replay that range: python3 {sys.argv[0]} {a.port} --seed {a.seed} --version {a.version} "
              f"--mutate-rate {a.mutate_rate}{' --valid-only' if a.valid_only else ''} "
              f"--concurrency {a.concurrency} --first {case_range[0]} --cases {case_range[1] - case_range[0]}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FuzzerBug as bug:
        traceback.print_exc()
        print(f"fuzz: internal error in {bug}", file=sys.stderr)
        sys.exit(2)
