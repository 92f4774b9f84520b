#!/usr/bin/env python3
"""bench/peer/peer.py — the Python consumers a platform team would write next
to tributary's sinks (bench/peer/peer.sh runs them; the venv is made by
bench/peer/install.sh from PyPI: confluent-kafka, fastavro, redis, psycopg).

  peer.py jsoncopy --broker B --src T --dst T2 -n N --proto DIR
      the N Avro records of T (Confluent wire format) as JSON with embedded
      schemas (Kafka Connect's JsonConverter, schemas.enable=true) on T2,
      same keys, same partition count: Kafka Connect's input
  peer.py redis --broker B --topic T --group G --host H --port P --db D --prefix X
      consume, decode with fastavro, SET prefix+key JSON in one pipeline per
      polled batch (no version guard), commit the offsets after the batch
  peer.py pg --broker B --topic T --group G --conninfo C --schema S
      consume, decode, COPY the batch into a temp staging table, then the
      same version-guarded merge as svc-persister (tombstones included),
      COMMIT, commit the offsets

The consumers run until SIGTERM, like a service; the harness counts what is
stored and stops them.
"""
import argparse
import base64
import datetime
import decimal
import io
import json
import os
import signal
import sys

import fastavro
from confluent_kafka import Consumer, Producer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

BATCH = 1000
running = True


def stop(_sig, _frm):
    global running
    running = False


def load_schema(proto):
    named = {}
    with open(os.path.join(proto, "meta.avsc")) as f:
        fastavro.parse_schema(json.load(f), named_schemas=named)
    with open(os.path.join(proto, "payee.avsc")) as f:
        return fastavro.parse_schema(json.load(f), named_schemas=named)


def decode(schema, value):
    if len(value) < 5 or value[0] != 0:
        raise ValueError("not the Confluent wire format")
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)


def consumer(a, offsets_reset="earliest"):
    return Consumer({"bootstrap.servers": a.broker, "group.id": a.group,
                     "auto.offset.reset": offsets_reset, "enable.auto.commit": False,
                     "isolation.level": "read_committed"})


def poll_batch(c):
    msgs = c.consume(BATCH, 0.1)
    out = []
    for m in msgs:
        if m.error():
            raise KafkaException(m.error())
        out.append(m)
    return out


# ---- jsoncopy ----------------------------------------------------------------

def connect_schema():
    s = lambda name, opt=False: {"field": name, "type": "string", "optional": opt}
    meta = {"type": "struct", "optional": False, "field": "meta", "fields": [
        s("id"), s("op"), s("kind"), s("source"), s("batch_id"),
        {"field": "seq", "type": "int64", "optional": False},
        {"field": "event_time", "type": "int64", "optional": False,
         "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
        {"field": "version", "type": "int64", "optional": False},
        s("old_key", True)]}
    return {"type": "struct", "optional": False, "name": "tributary.dataset.Payee", "fields": [
        meta, s("payee_id"), s("name"), s("account_number"), s("routing_number"),
        s("iban", True), s("country"), s("currency"), s("email", True),
        {"field": "amount_limit", "type": "bytes", "optional": False,
         "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "18"}},
        s("status"),
        {"field": "updated_at", "type": "int64", "optional": False,
         "name": "org.apache.kafka.connect.data.Timestamp", "version": 1}]}


def ms(t):
    if isinstance(t, datetime.datetime):
        return int(t.timestamp() * 1000)
    return int(t)


def dec_b64(d):
    unscaled = int(d.scaleb(2).to_integral_value())
    n = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def jsoncopy(a):
    schema = load_schema(a.proto)
    admin = AdminClient({"bootstrap.servers": a.broker})
    md = admin.list_topics(a.src, timeout=20)
    nparts = len(md.topics[a.src].partitions)
    fs = admin.create_topics([NewTopic(a.dst, nparts, 1)])
    for f in fs.values():
        f.result()
    cs = connect_schema()
    p = Producer({"bootstrap.servers": a.broker, "linger.ms": 20, "compression.codec": "lz4"})
    a.group = "peer-jsoncopy-" + a.dst
    c = consumer(a)
    c.subscribe([a.src])
    n = 0
    while n < a.n:
        for m in poll_batch(c):
            r = decode(schema, m.value())
            meta = dict(r["meta"])
            meta["event_time"] = ms(meta["event_time"])
            rec = dict(r)
            rec["meta"] = meta
            rec["amount_limit"] = dec_b64(r["amount_limit"])
            rec["updated_at"] = ms(r["updated_at"])
            doc = json.dumps({"schema": cs, "payload": rec}, separators=(",", ":"))
            while True:
                try:
                    p.produce(a.dst, doc.encode(), m.key(), partition=m.partition())
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
            n += 1
    c.close()
    if p.flush(120) != 0:
        print("jsoncopy: records not delivered", file=sys.stderr)
        return 1
    return 0


# ---- redis -------------------------------------------------------------------

def default(o):
    if isinstance(o, decimal.Decimal):
        return str(o)
    if isinstance(o, datetime.datetime):
        return o.isoformat()
    raise TypeError(type(o))


def redis_job(a):
    import redis
    schema = load_schema(a.proto)
    r = redis.Redis(host=a.host, port=a.port, db=a.db)
    c = consumer(a)
    c.subscribe([a.topic])
    while running:
        msgs = poll_batch(c)
        if not msgs:
            continue
        pipe = r.pipeline(transaction=False)
        for m in msgs:
            rec = decode(schema, m.value())
            pipe.set(a.prefix + rec["payee_id"], json.dumps(rec, default=default))
        pipe.execute()
        c.commit(asynchronous=False)
    c.close()
    return 0


# ---- pg ----------------------------------------------------------------------

COLS = ["payee_id", "name", "account_number", "routing_number", "iban", "country", "currency",
        "email", "amount_limit", "status", "updated_at"]


def pg_job(a):
    import psycopg
    schema = load_schema(a.proto)
    conn = psycopg.connect(a.conninfo)
    sc = a.schema
    q = lambda n: '"%s"' % n
    cols = ", ".join(q(x) for x in COLS)
    with conn.cursor() as cur:
        cur.execute(f'CREATE TEMP TABLE stage (LIKE {q(sc)}.payee INCLUDING DEFAULTS) ON COMMIT DELETE ROWS')
    conn.commit()
    merge = (f'INSERT INTO {q(sc)}.payee AS t ({cols}, tb_version, tb_id, tb_batch) '
             f'SELECT {", ".join("s." + q(x) for x in COLS)}, s.tb_version, s.tb_id, s.tb_batch '
             f'FROM stage s WHERE NOT EXISTS (SELECT 1 FROM {q(sc)}.payee_tombstone d '
             f'WHERE d.key = s.payee_id AND d.tb_version >= s.tb_version) '
             f'ON CONFLICT (payee_id) DO UPDATE SET '
             + ", ".join(f'{q(x)} = EXCLUDED.{q(x)}' for x in COLS if x != "payee_id")
             + ', tb_version = EXCLUDED.tb_version, tb_id = EXCLUDED.tb_id, '
               'tb_batch = EXCLUDED.tb_batch, tb_persisted_at = now() '
               'WHERE t.tb_version <= EXCLUDED.tb_version')
    c = consumer(a)
    c.subscribe([a.topic])
    while running:
        msgs = poll_batch(c)
        if not msgs:
            continue
        latest = {}
        for m in msgs:  # the newest version of each key in the batch
            rec = decode(schema, m.value())
            k = rec["payee_id"]
            if k not in latest or latest[k]["meta"]["version"] <= rec["meta"]["version"]:
                latest[k] = rec
        with conn.cursor() as cur:
            with cur.copy(f"COPY stage ({cols}, tb_version, tb_id, tb_batch) FROM STDIN") as cp:
                for rec in latest.values():
                    cp.write_row([rec[x] for x in COLS] +
                                 [rec["meta"]["version"], rec["meta"]["id"], rec["meta"]["batch_id"]])
            cur.execute(merge)
        conn.commit()
        c.commit(asynchronous=False)
    c.close()
    conn.close()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["jsoncopy", "redis", "pg"])
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--proto", default=os.path.join(os.path.dirname(__file__), "..", "..", "proto"))
    ap.add_argument("--src")
    ap.add_argument("--dst")
    ap.add_argument("-n", type=int, default=0)
    ap.add_argument("--topic")
    ap.add_argument("--group")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--db", type=int, default=11)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--conninfo")
    ap.add_argument("--schema")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return {"jsoncopy": jsoncopy, "redis": redis_job, "pg": pg_job}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
