// The bybit-dcp-exporter monitoring mixin: Prometheus rules and alerts, and Grafana dashboards.
// mixin/build.py writes them to alerts/*.rules.yml and dashboards/*.json (committed, and a test
// fails when they are stale); deploy/kubernetes/generate.py wraps the rules in a PrometheusRule.
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'dashboards.libsonnet')
