#!/usr/bin/env python3
"""deploy/grafana/dashboards.py — writes the three Grafana dashboards of seed 002
(operational, performance, errors) as JSON beside this file.

    python3 deploy/grafana/dashboards.py          write the JSON files
    python3 deploy/grafana/dashboards.py --check  exit 1 if a file differs from
                                                  what this script writes

The JSON files are what users import (Dashboards → Import, a Prometheus data
source); this script is how they are kept consistent: one panel helper, one
grid, the same data source variable and service label everywhere. Every
metric named here is checked against the running services' /metrics by
tests/integration/metrics_names.sh.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"


def svc(expr):
    """A `service` label from either scrape layout (job or pod label)."""
    return ('label_replace(label_replace(%s, "service", "$1", "job", "(svc-.+)"), '
            '"service", "$1", "app_kubernetes_io_name", "(svc-.+)")' % expr)


class Board:
    def __init__(self, uid, title, description):
        self.uid, self.title, self.description = uid, title, description
        self.panels, self.x, self.y, self.row_h = [], 0, 0, 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0

    def panel(self, kind, title, targets, unit, description, w, h, thresholds=None, extra=None):
        p = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": self._place(w, h),
            "targets": [
                {"expr": e, "legendFormat": lf, "range": True, "datasource": DS,
                 "refId": chr(ord("A") + i)}
                for i, (e, lf) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        }
        if thresholds is not None:
            p["fieldConfig"]["defaults"]["thresholds"] = {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}] +
                         [{"color": c, "value": v} for v, c in thresholds],
            }
        if kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto",
                            "justifyMode": "auto", "orientation": "auto"}
        elif kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
            if thresholds is not None:
                p["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
        elif kind == "state-timeline":
            p["options"] = {"showValue": "auto", "mergeValues": True, "rowHeight": 0.9}
        if extra:
            p.update(extra)
        self.panels.append(p)

    def stat(self, title, expr, unit, description, thresholds=None):
        self.panel("stat", title, [(expr, "")], unit, description, 4, 4, thresholds)

    def ts(self, title, targets, unit, description, w=12, thresholds=None):
        self.panel("timeseries", title, targets, unit, description, w, 8, thresholds)

    def json(self):
        return {
            "title": self.title,
            "uid": self.uid,
            "description": self.description,
            "tags": ["tributary", "kafka"],
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": "now-3h", "to": "now"},
            "timepicker": {},
            "links": [{"title": "tributary", "type": "dashboards", "tags": ["tributary"],
                       "asDropdown": True, "includeVars": True, "keepTime": True}],
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "templating": {"list": [{
                "name": "datasource", "label": "Prometheus", "type": "datasource",
                "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
                "options": []}]},
            "panels": self.panels,
        }


def lag():
    return "sum by (service, topic) (%s)" % svc("(tributary_kafka_consumer_lag >= 0)")


def error_rate(by):
    g = "by (%s) " % by if by else ""
    return ('sum %s(rate(tributary_validator_records_total{outcome=~"invalid|poison|exhausted"}[%s]))'
            ' / sum %s(rate(tributary_validator_records_total{outcome!="retrying"}[%s]))'
            % (g, RI, g, RI))


def e2e(q, by="le"):
    return ("histogram_quantile(%s, sum by (%s) (rate(tributary_end_to_end_latency_seconds_bucket[%s])))"
            % (q, by, RI))


def operational():
    b = Board("tributary-operational", "tributary — operational",
              "Is the pipeline up and keeping up: throughput per stage, consumer lag, "
              "circuit breakers, targets and reconciliation (seed 002, operational view; "
              "alert thresholds from seed 003).")
    b.stat("Ingested / s", "sum(rate(tributary_ingest_records_published_total[%s]))" % RI, "ops",
           "Records svc-ingest published to <dataset>.raw (committed transactions).")
    b.stat("Written / s", "sum(rate(tributary_persister_rows_total{outcome=\"written\"}[%s]))" % RI,
           "ops", "Rows svc-persister wrote to PostgreSQL or MongoDB.")
    b.stat("Max consumer lag", "max(sum by (job, app_kubernetes_io_name, topic) "
           "(tributary_kafka_consumer_lag >= 0))", "short",
           "The largest lag of one consumer group on one topic, summed over partitions. "
           "Alert above 1000 for 5 minutes.", [(1000, "red")])
    b.stat("Circuits not closed", "count(tributary_circuit_state >= 1) or vector(0)", "short",
           "Circuit breakers open (1) or half-open (2).", [(1, "red")])
    b.stat("Targets down", 'count(up{job=~"svc-.+"} == 0 or up{app_kubernetes_io_part_of="tributary"} == 0)'
           " or vector(0)", "short", "Service scrape targets that do not answer.", [(1, "red")])
    b.stat("Unclean batches", 'max(tributary_recon_batches{state="unclean"}) or vector(0)', "short",
           "Batches svc-recon found with records missing, altered, duplicated or unexpected.",
           [(1, "red")])
    b.ts("Throughput by stage", [
        ("sum by (dataset) (rate(tributary_ingest_records_published_total[%s]))" % RI, "ingest {{dataset}}"),
        ("sum by (dataset, outcome) (rate(tributary_validator_records_total[%s]))" % RI,
         "validator {{dataset}} {{outcome}}"),
        ("sum by (sink, dataset, outcome) (rate(tributary_sink_records_total[%s]))" % RI,
         "{{sink}} {{dataset}} {{outcome}}"),
        ("sum by (sink, dataset, outcome) (rate(tributary_persister_rows_total[%s]))" % RI,
         "persister/{{sink}} {{dataset}} {{outcome}}"),
    ], "ops", "Records per second at each stage, by outcome.")
    b.ts("Consumer lag by service and topic", [(lag(), "{{service}} {{topic}}")], "short",
         "Records behind per consumer group and topic (-1, not known yet, left out).",
         thresholds=[(1000, "red")])
    b.ts("Produced to Kafka by topic", [
        ("sum by (topic) (rate(tributary_kafka_produced_total[%s]))" % RI, "{{topic}}"),
    ], "ops", "Records delivered to Kafka, per topic (delivery reports).")
    b.panel("state-timeline", "Circuit breakers", [
        ("max by (service, name) (%s)" % svc("tributary_circuit_state"), "{{service}} {{name}}"),
    ], "short", "0 closed, 1 open, 2 half-open.", 12, 8)
    b.ts("Reconciled batches by state", [
        ("max by (state) (tributary_recon_batches)", "{{state}}"),
    ], "short", "svc-recon's batches, each at its latest reconciliation.")
    b.ts("Rebalances", [
        ("sum by (service) (%s)" % svc("rate(tributary_kafka_rebalances_total[%s])" % RI), "{{service}}"),
    ], "ops", "Consumer group rebalances: frequent ones mean instances coming and going.")
    return b


def performance():
    b = Board("tributary-performance", "tributary — performance",
              "Throughput and latency: end-to-end (ingest to sink write), per stage, Kafka, "
              "Redis and HTTP (seed 002, performance view; seed 003: p95 < 500 ms alert).")
    b.stat("p95 end-to-end", e2e(0.95), "s",
           "From svc-ingest's tb.ingest.ts header to the sink's write. Alert above 500 ms.",
           [(0.5, "red")])
    b.stat("p99 end-to-end", e2e(0.99), "s", "Seed 003's goal: p99 < 100 ms.", [(0.1, "orange")])
    b.stat("Ingest lines / s", "sum(rate(tributary_ingest_lines_read_total[%s]))" % RI, "ops",
           "Input lines svc-ingest read.")
    b.stat("Validated / s", "sum(rate(tributary_validator_records_total[%s]))" % RI, "ops",
           "Records svc-validator routed.")
    b.stat("Kafka produce p95", "histogram_quantile(0.95, sum by (le) "
           "(rate(tributary_kafka_produce_latency_seconds_bucket[%s])))" % RI, "s",
           "produce() to delivery report, all services.")
    b.stat("Broker RTT", "max(tributary_kafka_broker_rtt_seconds)", "s",
           "Worst average broker round trip (librdkafka statistics).")
    b.ts("End-to-end latency by dataset", [
        (e2e(0.50, "le, dataset"), "p50 {{dataset}}"),
        (e2e(0.95, "le, dataset"), "p95 {{dataset}}"),
        (e2e(0.99, "le, dataset"), "p99 {{dataset}}"),
    ], "s", "Ingest to committed sink write, by dataset.", thresholds=[(0.5, "red")])
    b.ts("Stage latency p95", [
        ("histogram_quantile(0.95, sum by (le) (rate(tributary_validator_batch_seconds_bucket[%s])))" % RI,
         "validator batch"),
        ("histogram_quantile(0.95, sum by (le, sink) (rate(tributary_sink_flush_seconds_bucket[%s])))" % RI,
         "{{sink}} flush"),
        ("histogram_quantile(0.95, sum by (le, sink) (rate(tributary_persister_flush_seconds_bucket[%s])))" % RI,
         "persister/{{sink}} flush"),
        ("histogram_quantile(0.95, sum by (le) (rate(tributary_ingest_checkpoint_seconds_bucket[%s])))" % RI,
         "ingest checkpoint"),
    ], "s", "One batch through each stage.")
    b.ts("Kafka transactions and delivery p95", [
        ("histogram_quantile(0.95, sum by (le, service) (%s))"
         % svc("rate(tributary_kafka_txn_commit_seconds_bucket[%s])" % RI), "commit {{service}}"),
        ("histogram_quantile(0.95, sum by (le, service) (%s))"
         % svc("rate(tributary_kafka_produce_latency_seconds_bucket[%s])" % RI), "delivery {{service}}"),
    ], "s", "Transaction commits (ingest, validator) and delivery reports.")
    b.ts("Batch sizes p50", [
        ("histogram_quantile(0.5, sum by (le, sink) (rate(tributary_sink_batch_records_bucket[%s])))" % RI,
         "{{sink}}"),
        ("histogram_quantile(0.5, sum by (le, sink) (rate(tributary_persister_batch_size_records_bucket[%s])))" % RI,
         "persister/{{sink}}"),
    ], "short", "Records per written batch (seed 004: up to 1000).")
    b.ts("Redis round trips p95", [
        ("histogram_quantile(0.95, sum by (le, op) (rate(tributary_redis_roundtrip_seconds_bucket[%s])))" % RI,
         "{{op}}"),
    ], "s", "One command, one pipeline, one connect (svc-validator's cache, svc-cache-feeder).")
    b.ts("HTTP p95 by route", [
        ("histogram_quantile(0.95, sum by (le, path) (rate(tributary_http_request_duration_seconds_bucket[%s])))" % RI,
         "{{path}}"),
    ], "s", "The services' own HTTP endpoints (probes, metrics, APIs).")
    b.ts("Producer queue", [
        ("sum by (service) (%s)" % svc("tributary_kafka_producer_queue_messages"), "{{service}}"),
    ], "short", "Records waiting in librdkafka's producer queue.")
    return b


def errors():
    b = Board("tributary-errors", "tributary — errors",
              "What goes wrong and where: error rate, outcomes, rule failures, dead letters, "
              "retries, client and commit errors, discrepancies (seed 002, error view; "
              "seed 003: error rate > 0.5 % alert).")
    b.stat("Error rate", error_rate(""), "percentunit",
           "Invalid, poison or exhausted over all records with an outcome (svc-validator). "
           "Alert above 0.5 %.", [(0.001, "orange"), (0.005, "red")])
    b.stat("Rejected lines / s", "sum(rate(tributary_ingest_lines_rejected_total[%s]))" % RI, "ops",
           "Input lines svc-ingest could not map to the dataset's schema.")
    b.stat("Rule failures / s", "sum(rate(tributary_validator_rule_failures_total[%s]))" % RI, "ops",
           "Failed validation rules.")
    b.stat("Dead letters / s", "sum(rate(tributary_sink_dlq_total[%s])) + "
           "sum(rate(tributary_persister_dlq_total[%s]))" % (RI, RI), "ops",
           "Records the sinks sent to <dataset>.dlq.")
    b.stat("Discrepant records", "sum(tributary_recon_discrepancies) or vector(0)", "short",
           "Records svc-recon found missing, altered, duplicated or unexpected.", [(1, "red")])
    b.stat("Kafka client errors / s", "sum(rate(tributary_kafka_client_errors_total[%s])) or vector(0)" % RI,
           "ops", "librdkafka error events (brokers down, transport, authentication, fatal).")
    b.ts("Error rate by dataset", [(error_rate("dataset"), "{{dataset}}")], "percentunit",
         "Seed 003: alert above 0.5 %, target below 0.1 %.", thresholds=[(0.005, "red")])
    b.ts("Validator outcomes (not valid)", [
        ('sum by (dataset, outcome) (rate(tributary_validator_records_total{outcome!="valid"}[%s]))' % RI,
         "{{dataset}} {{outcome}}"),
    ], "ops", "invalid and poison go to .dlq; retrying to .retry; exhausted after the last retry.")
    b.ts("Rule failures by field and rule", [
        ("sum by (dataset, field, rule) (rate(tributary_validator_rule_failures_total[%s]))" % RI,
         "{{dataset}} {{field}} {{rule}}"),
    ], "ops", "Which rules refuse records.")
    b.ts("Rejected input lines by reason", [
        ("sum by (dataset, reason) (rate(tributary_ingest_lines_rejected_total[%s]))" % RI,
         "{{dataset}} {{reason}}"),
    ], "ops", "svc-ingest's refused lines (line number and reason in the batch summary).")
    b.ts("Dead letters by stage", [
        ("sum by (sink, dataset) (rate(tributary_sink_dlq_total[%s]))" % RI, "{{sink}} {{dataset}}"),
        ("sum by (dataset) (rate(tributary_persister_dlq_total[%s]))" % RI, "persister {{dataset}}"),
    ], "ops", "Records the sinks refused or could not decode.")
    b.ts("Kafka errors", [
        ("sum by (service) (%s)" % svc("rate(tributary_kafka_client_errors_total[%s])" % RI),
         "client {{service}}"),
        ("sum by (service) (%s)" % svc("rate(tributary_kafka_produce_errors_total[%s])" % RI),
         "produce {{service}}"),
        ("sum by (service) (%s)" % svc("rate(tributary_kafka_commit_errors_total[%s])" % RI),
         "commit {{service}}"),
    ], "ops", "Client error events, failed deliveries and failed offset commits.")
    b.ts("Discrepancies by verdict and stage", [
        ("sum by (verdict, stage) (tributary_recon_discrepancies)", "{{verdict}} {{stage}}"),
    ], "short", "svc-recon's discrepant records (GET /discrepancies for the records).")
    return b


BOARDS = {"tributary-operational.json": operational, "tributary-performance.json": performance,
          "tributary-errors.json": errors}


def main(argv):
    check = "--check" in argv
    bad = 0
    for name, fn in BOARDS.items():
        text = json.dumps(fn().json(), indent=2, ensure_ascii=False) + "\n"
        path = os.path.join(HERE, name)
        if check:
            if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
                print("dashboards: %s differs from what dashboards.py writes" % name)
                bad = 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv))
