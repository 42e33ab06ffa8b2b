// The bybit-dcp-exporter monitoring mixin, with the fields monitoring mixins have: prometheusRules
// (recording rules), prometheusAlerts (alerts) and grafanaDashboards, set by _config.
// mixin/build.py writes them to alerts/*.rules.yml and dashboards/*.json (committed, and a test
// fails when they are stale); deploy/kubernetes/generate.py wraps the rules in a PrometheusRule.
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'dashboards.libsonnet')
