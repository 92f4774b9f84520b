#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora of tests/fuzz/corpus/<harness>/
(kept in the repository; run again after changing a seed here):

  python3 tests/fuzz/make_seeds.py

Seeds come from the test inputs: proto/ (the rules files, the schemas'
fields), the CSV and JSON Lines shapes of tests/unit/test_ingest_parse.c and
deploy/local/gen_payees.py, and hand-made Avro bodies that reach negative
lengths and negative block counts. Files a fuzzer found (crashes kept as
regressions) live beside these and are never rewritten by this script."""
import gzip
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def zz(n):
    """Avro long: zig-zag varint."""
    u = (n << 1) ^ (n >> 63)
    u &= (1 << 64) - 1
    out = b""
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def s(txt):
    b = txt.encode()
    return zz(len(b)) + b


def meta(line=1):
    return (s("0190f3a2-7b1c-8d2e-9f00-000000000001") + zz(0) + zz(0) + s("payees.csv") +
            s("batch-1") + zz(line) + zz(1700000000000) + zz(1000000) + zz(0))


def wire(sid, body):
    return b"\x00" + struct.pack(">I", sid) + body


PAYEE = (meta() + s("P00000001") + s("Smith, J") + s("98362673") + s("317296413") + zz(0) +
         s("GB") + s("GBP") + zz(1) + s("p1@example.com") + zz(3) + b"\x01\x86\xa0" + zz(0) +
         zz(1700000000000))
EVENT = (meta() + s("e-1") + zz(1700000000000) + s("web") + s("click") + s('{"a":1}') +
         s("1.0") + s("normal"))
AUDIT = (s("a-1") + zz(1) + s("P1") + s("payee") + s("batch-1") + s("ingest") + s("published") +
         zz(0) + zz(1700000000000) + zz(0) + zz(0) + zz(0) + zz(0) + zz(0) + zz(0))

# ---- Avro decoding and the wire format ------------------------------------
for h in ("fuzz_avro_decode", "fuzz_wire"):
    put(h, "payee_ok", wire(101, PAYEE))
    put(h, "event_ok", wire(104, EVENT))
    put(h, "audit_v1_ok", wire(201, AUDIT))
    put(h, "audit_v2_ok", wire(202, AUDIT + zz(0)))
    put(h, "unknown_id", wire(999, PAYEE))
    put(h, "bad_magic", b"\x01" + PAYEE[:20])
    put(h, "short_header", b"\x00\x00\x00")
    put(h, "truncated_body", wire(101, PAYEE[:40]))
    put(h, "trailing_bytes", wire(101, PAYEE + b"\x00\x00"))
    # a string whose length is negative (-1), and one far too long
    put(h, "negative_string_length", wire(101, zz(-1) + PAYEE[1:]))
    put(h, "huge_string_length", wire(101, zz(1 << 40) + b"x"))
    put(h, "negative_bytes_length", wire(101, PAYEE[:-12] + zz(-5) + b"\x00" * 10))
    put(h, "bad_union_branch", wire(101, meta()[:-1] + zz(7) + PAYEE[len(meta()):]))
    put(h, "bad_enum_index", wire(101, meta()[:38] + zz(9) + meta()[39:]))
# The all-types schema of fuzz_avro_decode.c: tags (array<string>), attrs
# (map<null|long|bytes>), points (array<P{int,float}>), digest (fixed 4),
# nested (map<array<double>>), flag (boolean). Bare bodies.
ok = (zz(2) + s("a") + s("b") + zz(0) +                      # tags: one block of 2
      zz(1) + s("k") + zz(1) + zz(42) + zz(0) +              # attrs: {"k": 42}
      zz(1) + zz(3) + struct.pack("<f", 1.5) + zz(0) +       # points: [{3, 1.5}]
      b"ABCD" +                                              # digest
      zz(1) + s("m") + zz(1) + struct.pack("<d", 2.0) + zz(0) + zz(0) +  # nested
      b"\x01")
put("fuzz_avro_decode", "alltypes_ok", ok)
# a negative block count is followed by the block's byte size (Avro spec)
neg = (zz(-2) + zz(4) + s("a") + s("b") + zz(0) + ok[len(zz(2) + s("a") + s("b") + zz(0)):])
put("fuzz_avro_decode", "alltypes_negative_block_count", neg)
put("fuzz_avro_decode", "alltypes_negative_block_wrong_size",
    zz(-2) + zz(99) + s("a") + s("b") + zz(0) + b"\x00" * 8)
put("fuzz_avro_decode", "alltypes_negative_block_negative_size",
    zz(-2) + zz(-4) + s("a") + s("b") + zz(0))
put("fuzz_avro_decode", "alltypes_min_long_block_count", zz(-(1 << 63)) + zz(1) + b"\x00")
put("fuzz_avro_decode", "alltypes_huge_block_count", zz(1 << 40) + s("a"))
put("fuzz_avro_decode", "alltypes_map_negative_count",
    zz(0) + zz(-1) + zz(5) + s("k") + zz(0) + zz(0) + ok[len(zz(2) + s("a") + s("b") + zz(0)) + 8:])

# ---- JSON ------------------------------------------------------------------
put("fuzz_json", "payee", json.dumps({"payee_id": "P1", "name": "Zoë العلي", "amount_limit": "10.50",
                                      "updated_at": "2026-11-02T01:01:00Z", "status": "ACTIVE"}))
put("fuzz_json", "numbers", '{"a":-9223372036854775808,"b":1.50e1,"c":-0,"d":1e400}')
put("fuzz_json", "escapes", '{"s":"\\u0000nul\\ud83d\\ude00\\"","t":[true,false,null]}')
put("fuzz_json", "deep", "[" * 200 + "]" * 200)
put("fuzz_json", "lone_surrogate", '{"s":"\\ud800"}')

# ---- the ingest reader and mapper -----------------------------------------
batch = ("payee_id,name,account_number,routing_number,country,currency,email,amount_limit,"
         "status,updated_at,version\n"
         'P00000001,"Γιώργος Müller, S.A.",98362673,317296413,GB,GBP,p1@example.com,798371.76,'
         "ACTIVE,2026-11-02T01:01:00Z,1000000\n"
         'P00000003,"O\'Brien Nordmann\nc/o 花子",36064062,777104035,FR,EUR,,305096.50,INACTIVE,'
         "2026-11-04T03:03:00Z,1000000\n"
         "P00000004,佐藤,20001801,590810920,JP,JPY,p4@example.com,-500235.16,BLOCKED,"
         "1700000000000,1000000\n")
change = ("op,old_key,payee_id,name,account_number,routing_number,country,currency,email,"
          "amount_limit,status,updated_at,version\n"
          "UPDATE,P00000002,P00000007,محمد,72557026,274813324,JP,JPY,p4@example.com,939708.31,"
          "BLOCKED,2026-11-05T04:04:00Z,1000009\n"
          "DELETE,,P00000006,Ola,80404756,470227646,GB,GBP,,657929.93,BLOCKED,"
          "2026-11-10T09:09:01Z,1000012\n"
          "UPSERT,,P9,x,1,1,US,USD,,1,ACTIVE,0,1\n")
jl = ('{"payee_id":"P1","name":"A","account_number":"1234","routing_number":"317296413",'
      '"country":"US","currency":"USD","amount_limit":"10.00","status":"ACTIVE",'
      '"updated_at":"2026-11-02T01:01:00Z"}\n'
      '{"payee_id":"P2","name":"B","account_number":"1234","routing_number":"317296413",'
      '"country":"US","currency":"USD","amount_limit":1.5,"status":"NOPE","updated_at":0,'
      '"op":"DELETE","version":-0}\n'
      '{"payee_id":"P3"\n[1,2]\n{"payee_id":"P4","name":"\\u0000"}\n')
put("fuzz_mapper", "payee_batch_csv", b"\x00" + batch.encode())
put("fuzz_mapper", "payee_change_csv", b"\x00" + change.encode())
put("fuzz_mapper", "payee_jsonl", b"\x01" + jl.encode())
put("fuzz_mapper", "payee_refuse_extra", b"\x08" + ("zzz," + batch.replace("\nP", "\n0,P")).encode())
put("fuzz_mapper", "payee_duplicate_column", b"\x00payee_id,payee_id,name\nP1,P1,x\n")
put("fuzz_mapper", "payee_bad_cells", b"\x00" + (batch.splitlines()[0] + "\n" +
    "P1,n,1,1,GB,GBP,,12.345,ACTIVE,yesterday,x\nP2,n,1,1,GB,GBP,,1e999,WHAT,0,99999999999999999999\n").encode())
put("fuzz_mapper", "event_csv", b"\x06id,timestamp,source,type,payload,metadata.version\n"
    b"e1,2026-01-01T00:00:00Z,web,click,{},1.0\n")
put("fuzz_mapper", "delivery_jsonl", b"\x03" + b'{"event_id":"d1","shipment_id":"s","tracking_number":"t",'
    b'"status":"DELIVERED","carrier":"c","occurred_at":0,"location":null}\n')
put("fuzz_mapper", "payee_gzip", b"\x00" + gzip.compress(batch.encode()))
put("fuzz_reader", "payee_batch_csv", b"\x00" + batch.encode())
put("fuzz_reader", "payee_change_csv", b"\x00" + change.encode())
put("fuzz_reader", "payee_jsonl", b"\x01" + jl.encode())

# ---- config ----------------------------------------------------------------
put("fuzz_config", "file_and_flags",
    "# comment\n! bang comment\nname = svc\nhttp.port=9090\nratio = 0.25\nmode=jsonl\n"
    "hosts = x, y ,z\nkafka.linger.ms = 5\n\0--force\n--batch-size\n100\n--hosts=w\nfile.csv\n"
    "\0TB_RATIO=0.75\nTB_KAFKA_ACKS=all\n")
put("fuzz_config", "bad_key", "name=x\nhttp.prot = 1\n")
put("fuzz_config", "out_of_range", "name=x\nhttp.port = 70000\n\0--ratio\n2\n")
put("fuzz_config", "missing_value", "\0--name\n")
put("fuzz_config", "deprecated_and_secret",
    "topic.valid.suffix=.v\nsecret_file=/nonexistent/secret\n\0--name=n\n--\n--notaflag\n")
put("fuzz_config", "help", "\0--help\n")
put("fuzz_config", "enum_env", "\0--name=a\n\0TB_MODE=xml\nTB_HTTP_PORT=-1\n")

# ---- rules -----------------------------------------------------------------
for f in sorted(os.listdir(os.path.join(ROOT, "proto"))):
    if f.endswith(".rules.json"):
        with open(os.path.join(ROOT, "proto", f), "rb") as fh:
            text = fh.read()
        rec = {}
        if f.startswith("payee"):
            rec = {"payee_id": "P1", "name": "A", "account_number": "1234",
                   "routing_number": "317296413", "country": "GB", "currency": "GBP",
                   "amount_limit": "10.00", "status": "ACTIVE", "updated_at": 1700000000000,
                   "meta": {"id": "0190f3a2-7b1c-8d2e-9f00-000000000001", "op": "ADD",
                            "kind": "BULK", "source": "x", "batch_id": "b", "seq": 1,
                            "event_time": 1, "version": 1}}
        put("fuzz_rules", f.replace(".rules.json", ""), text + b"\0" + json.dumps(rec).encode())
put("fuzz_rules", "every_kind",
    '{"dataset":"payee","rules":[{"field":"name","required":true},'
    '{"field":"meta.seq","type":"integer","min":1,"max":10},'
    '{"field":"payee_id","pattern":"^[a-z]+$","length":{"min":2,"max":4}},'
    '{"field":"status","enum":["ACTIVE",1]},{"field":"amount_limit","min":"0.00","message":"m"},'
    '{"field":"updated_at","check":"not_future"},{"field":"country","check":"iso3166_alpha2"},'
    '{"field":"account_number","external":{"url":"http://v.local/x/{value}?c={country}",'
    '"cache_ttl_s":60}}]}\0{"name":"","payee_id":"ABCDEFG","meta":{"seq":11}}')
put("fuzz_rules", "bad_pattern", '{"dataset":"payee","rules":[{"field":"name","pattern":"(["}]}')
put("fuzz_rules", "unknown_key", '{"dataset":"payee","rules":[{"field":"name","requird":true}]}')

# ---- recon API ----------------------------------------------------------------
R = ["/batches", "/batches/{id}", "/discrepancies", "/replay", "/windows", "/reconcile"]
put("fuzz_recon_api", "batches_page", b"\x00\npage=2\n\n")
put("fuzz_recon_api", "batches_bad_page", b"\x00\npage=0x10\n\n")
put("fuzz_recon_api", "batch_id", b"\x01batch-2026-11-02\n\nBearer fuzz-operator-token-0123456789\n")
put("fuzz_recon_api", "batch_slash", b"\x01a/b\n\n\n")
put("fuzz_recon_api", "discrepancies", b"\x02\nbatch=b%201&verdict=missing&page=1\n\n")
put("fuzz_recon_api", "discrepancies_bad_escape", b"\x02\nbatch=%zz&verdict=%\n\n")
put("fuzz_recon_api", "replay_dry", b"\x03\nbatch=b1&verdict=altered&dry_run=true\nBearer  x y\n")
put("fuzz_recon_api", "windows", b"\x04\ndataset=payee&from=2026-01-01T00:00:00Z&to=1767225600001\n\n")
put("fuzz_recon_api", "windows_unknown", b"\x04\ndataset=nope&from=1&to=0\n\n")
put("fuzz_recon_api", "reconcile_body", b"\x05\nbatch&&=&from=+1\nbearer fuzz\n" +
    json.dumps({"batch": "b" * 600}).encode())
put("fuzz_recon_api", "reconcile_windows", b"\x05\nfrom=1700000000000&to=1700000060000\n\n")
put("fuzz_recon_api", "no_query", b"\x82\n\n\n")
