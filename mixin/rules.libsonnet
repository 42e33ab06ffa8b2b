// Prometheus rules for bybit-dcp-exporter: recording rules, then alerts.
//
// Every alert carries `severity` (critical pages, warning opens a ticket), a `summary`,
// a templated `description` and a `runbook_url` pointing at its entry in alerts/runbook.md.
// Unit tests: alerts/tests/*.yml (`promtool test rules alerts/tests/*.yml`).
//
// How `for`, `keep_firing_for` and thresholds were chosen (reviewed alert by alert):
// - `for` is the shortest time that tells a fault from a blip the exporter heals by itself:
//   a poll retried at the next interval (polls every 30 s by default, so 10m is ~20 failed
//   polls), a reconnect (pong timeout 10 s + backoff, so 5m), a heartbeat late past one ping
//   (1m). Facts are not blips: a DCP trigger and a failed drill fire at once (`for: 0m`).
// - `keep_firing_for` bridges a flapping condition so one incident is one notification: at
//   least one `for` of the same alert, longer (10m) where the condition is known to toggle
//   with each poll (drift under re-assertion, not-enabled under an account manager's edits).
//   A trigger is held 30m: its condition is true for one minute only (below).
// - Thresholds say what the docs say: "more than 3 reconnects" counts whole reconnects
//   (`round()` of the extrapolated increase, which reads 3.005 for exactly 3); the heartbeat
//   ratios are of the DCP window past the ping interval; clock skew warns at 40 % of
//   Bybit's +5 s / -1 s edges; rate-limit headroom at 20 %.
//
// Label matching: every exporter series carries `job`, `instance` and `account` (plus
// `product`, `reason`, `endpoint` ... where the contract says so). Joins therefore match
// on (job, instance, account[, product]) so that several exporters, or replicas watching
// the same account, never mix.
//
// The source of alerts/bybit-dcp.rules.yml (mixin/build.py writes it); thresholds, `for`
// durations and the runbook address come from _config (config.libsonnet).
//
// As monitoring mixins do, the recording rules are `prometheusRules` and the alerts
// `prometheusAlerts`. Both have a group "bybit-dcp": mixin/build.py writes it as one group,
// recording rules first, because rules in a group are evaluated in order, so every alert sees
// the recording rules of the same evaluation (groups are evaluated in no guaranteed order). A
// tool that writes the two fields to two files (mixtool) gives two groups of that name; its
// alerts then read the recording rules of the previous evaluation, one interval late.
{
  prometheusRules+:: {
    groups+: [
    {
      name: "bybit-dcp",
      rules: [
        // How late the heartbeat is: seconds since the last pong beyond the configured ping
        // interval. A healthy stream sawtooths the raw ping gap between 0 and the ping interval
        // (20 s by default, longer than Bybit's default 10 s window), so the raw gap cannot be
        // compared with the window; the part beyond the ping interval can. When the exporter
        // does not export its ping interval, fall back to the raw gap (noisier, never silent).
        {
          record: "account:bybit_dcp_ws_heartbeat_overdue_seconds",
          expr: |||
            clamp_min(bybit_dcp_ws_ping_gap_seconds - bybit_dcp_ws_ping_interval_seconds, 0)
              or
            bybit_dcp_ws_ping_gap_seconds
          |||,
        },
        // Heartbeat lateness as a fraction of each enabled product's DCP window: 1 means the
        // heartbeat has been silent for a whole window beyond its schedule.
        {
          record: "account_product:bybit_dcp_ws_heartbeat_overdue_window:ratio",
          expr: |||
            account:bybit_dcp_ws_heartbeat_overdue_seconds
              / on (job, instance, account) group_right ()
            (
                (bybit_dcp_window_seconds > 0)
              and on (job, instance, account, product)
                (bybit_dcp_enabled == 1)
            )
          |||,
        },
        // The same against the smallest enabled window of the account (the first to fire).
        {
          record: "account:bybit_dcp_ws_heartbeat_overdue_min_window:ratio",
          expr: |||
            max by (job, instance, account) (account_product:bybit_dcp_ws_heartbeat_overdue_window:ratio)
          |||,
        },
        // Heartbeat round-trip-time quantiles over heartbeatRttWindow (NaN while no ping was
        // answered). The name says the default, 5m; a fast test run shortens the range.
        {
          record: "account:bybit_dcp_ws_ping_rtt_seconds:quantile_rate5m",
          expr: |||
            histogram_quantile(0.5, sum by (job, instance, account, le) (rate(bybit_dcp_ws_ping_rtt_seconds_bucket[%(heartbeatRttWindow)s])))
          ||| % $._config,
          labels: {
            quantile: "0.5",
          },
        },
        {
          record: "account:bybit_dcp_ws_ping_rtt_seconds:quantile_rate5m",
          expr: |||
            histogram_quantile(0.9, sum by (job, instance, account, le) (rate(bybit_dcp_ws_ping_rtt_seconds_bucket[%(heartbeatRttWindow)s])))
          ||| % $._config,
          labels: {
            quantile: "0.9",
          },
        },
        {
          record: "account:bybit_dcp_ws_ping_rtt_seconds:quantile_rate5m",
          expr: |||
            histogram_quantile(0.99, sum by (job, instance, account, le) (rate(bybit_dcp_ws_ping_rtt_seconds_bucket[%(heartbeatRttWindow)s])))
          ||| % $._config,
          labels: {
            quantile: "0.99",
          },
        },
        // Fraction of the REST rate limit still available per endpoint (1 = untouched).
        {
          record: "account_endpoint:bybit_dcp_api_rate_limit_headroom:ratio",
          expr: |||
            bybit_dcp_api_rate_limit_remaining / (bybit_dcp_api_rate_limit > 0)
          |||,
        },
      ],
    },
    ],
  },
  prometheusAlerts+:: {
    groups+: [
    {
      name: "bybit-dcp",
      rules: [
        // ---------------------------------------------------------------- the exporter itself
        // `up` of any target that exposed bybit_dcp_exporter_build_info in the last day: no
        // job name has to be configured (_config.jobSelector narrows it), and a target that never worked is caught by
        // BybitDcpExporterAbsent.
        {
          alert: "BybitDcpExporterDown",
          expr: |||
            up%(jobMatcher)s == 0
              and on (job, instance)
            max_over_time(bybit_dcp_exporter_build_info[1d])
          ||| % $._config,
          'for': $._config.forDurations.BybitDcpExporterDown,
          keep_firing_for: $._config.keepFiringFor.BybitDcpExporterDown,
          labels: {
            severity: "critical",
          },
          annotations: {
            summary: "Bybit DCP exporter target is down.",
            description: "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes. DCP configuration, heartbeat and triggers of its accounts are not watched; in guardian mode its DCP-protected connection is gone too.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpexporterdown",
          },
        },
        // No exporter series at all, and no known exporter target that is merely down (that
        // is BybitDcpExporterDown's page): targets gone from service discovery, or never there.
        {
          alert: "BybitDcpExporterAbsent",
          expr: |||
            absent(bybit_dcp_exporter_build_info)
              unless on ()
            (up%(jobMatcher)s == 0 and on (job, instance) max_over_time(bybit_dcp_exporter_build_info[1d]))
          ||| % $._config,
          'for': $._config.forDurations.BybitDcpExporterAbsent,
          keep_firing_for: $._config.keepFiringFor.BybitDcpExporterAbsent,
          labels: {
            severity: "critical",
          },
          annotations: {
            summary: "No Bybit DCP exporter is reporting to Prometheus.",
            description: "No series bybit_dcp_exporter_build_info for 10 minutes (value {{ $value }}): no exporter is scraped, so nothing watches Bybit Disconnection Protect.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpexporterabsent",
          },
        },
        // The exporter's own event loop running late: every pong and REST answer waits that long
        // before it is read, so the heartbeat and REST figures would blame Bybit for the
        // exporter's stall. 100 ms at the 99th percentile is far above a healthy loop (~1 ms)
        // and below the pong timeout; 10 minutes rides out a burst of scrapes or a restart.
        {
          alert: "BybitDcpExporterEventLoopLag",
          expr: |||
            histogram_quantile(0.99, sum by (job, instance, le) (rate(bybit_dcp_exporter_event_loop_lag_seconds_bucket%(jobMatcher)s[%(eventLoopLagWindow)s])))
              > %(eventLoopLagSeconds)s
          ||| % $._config,
          'for': $._config.forDurations.BybitDcpExporterEventLoopLag,
          keep_firing_for: $._config.keepFiringFor.BybitDcpExporterEventLoopLag,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "The exporter's event loop runs late; its heartbeat and REST figures include its own stall.",
            description: "The 99th percentile of the event-loop lag of {{ $labels.instance }} is {{ $value | humanizeDuration }} over %(eventLoopLagWindow)s. Pongs and REST answers wait this long before the exporter reads them, so RTT and request durations of its accounts are inflated by the exporter, not by Bybit." % $._config,
            runbook_url: $._config.runbookUrlPattern % "bybitdcpexportereventlooplag",
          },
        },
        // ---------------------------------------------------------------- DCP configuration
        {
          alert: "BybitDcpConfigPollFailing",
          expr: "bybit_dcp_up == 0",
          'for': $._config.forDurations.BybitDcpConfigPollFailing,
          keep_firing_for: $._config.keepFiringFor.BybitDcpConfigPollFailing,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Bybit DCP configuration cannot be read.",
            description: "The DCP-config poll of account {{ $labels.account }} on {{ $labels.instance }} has failed for 10 minutes (bybit_dcp_up = {{ $value }}). Window, drift and not-enabled alerts for this account are blind until it succeeds.{{ with printf \"bybit_dcp_last_poll_error_info{job='%s',instance='%s',account='%s'}\" $labels.job $labels.instance $labels.account | query }}{{ range . }} Last error {{ .Labels.code }}: {{ .Labels.hint }}.{{ end }}{{ end }}",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpconfigpollfailing",
          },
        },
        // The poller reports success but the last good poll is old: a hung poller.
        {
          alert: "BybitDcpConfigStale",
          expr: |||
            (time() - bybit_dcp_last_poll_success_timestamp_seconds) > %(configStaleSeconds)s
              unless on (job, instance, account)
            (bybit_dcp_up == 0)
          ||| % $._config,
          'for': $._config.forDurations.BybitDcpConfigStale,
          keep_firing_for: $._config.keepFiringFor.BybitDcpConfigStale,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Bybit DCP configuration has not been refreshed.",
            description: "The last good DCP-config poll of account {{ $labels.account }} on {{ $labels.instance }} was {{ $value | humanizeDuration }} ago although the exporter does not report a failure: the poller looks stuck.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpconfigstale",
          },
        },
        // A desired window is configured but Bybit does not list the product as ON. Only
        // while polls succeed (bybit_dcp_enabled is absent while the state is unknown).
        {
          alert: "BybitDcpNotEnabled",
          expr: |||
            (bybit_dcp_desired_window_seconds > 0)
              and on (job, instance, account, product)
            (bybit_dcp_enabled == 0)
              and on (job, instance, account)
            (bybit_dcp_up == 1)
          |||,
          'for': $._config.forDurations.BybitDcpNotEnabled,
          keep_firing_for: $._config.keepFiringFor.BybitDcpNotEnabled,
          labels: {
            severity: "critical",
          },
          annotations: {
            summary: "DCP is off for a product the desk expects to be protected.",
            description: "Account {{ $labels.account }} wants a {{ $value }} s DCP window for {{ $labels.product }}, but Bybit does not list {{ $labels.product }} with DCP ON. If the bots of this product die, their open orders stay on the book.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpnotenabled",
          },
        },
        // Window differs from the desired one (a product that is not enabled at all is
        // BybitDcpNotEnabled's case). The value is the window Bybit reports.
        {
          alert: "BybitDcpWindowDrift",
          expr: |||
            bybit_dcp_window_seconds
              and on (job, instance, account, product)
            (bybit_dcp_window_drift == 1)
              and on (job, instance, account, product)
            (bybit_dcp_enabled == 1)
          |||,
          'for': $._config.forDurations.BybitDcpWindowDrift,
          keep_firing_for: $._config.keepFiringFor.BybitDcpWindowDrift,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "DCP window differs from the desired window.",
            description: "Bybit reports a {{ $value }} s DCP window for {{ $labels.product }} on account {{ $labels.account }}, not the configured one (see bybit_dcp_desired_window_seconds), for 10 minutes. Re-assertion (if enabled) has not put it back.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpwindowdrift",
          },
        },
        // DCP is on for a category's product, but the account mode keeps DCP from cancelling
        // that category's orders: inverse orders under UTA 1.0 (Bybit's acct-mode page). The value
        // is the account's unifiedMarginStatus (3 or 4); the mode is read every 5 minutes.
        {
          alert: "BybitDcpCategoryUnprotected",
          expr: |||
            (bybit_dcp_unprotected_category == 1)
              * on (job, instance, account) group_left ()
            bybit_dcp_account_unified_margin_status
          |||,
          'for': $._config.forDurations.BybitDcpCategoryUnprotected,
          keep_firing_for: $._config.keepFiringFor.BybitDcpCategoryUnprotected,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "DCP does not protect this category's orders in the account's mode.",
            description: "Account {{ $labels.account }} has DCP on for the product of {{ $labels.category }} orders, but its account mode (unifiedMarginStatus {{ $value }}, UTA 1.0) keeps DCP from cancelling them: if the bots die, their {{ $labels.category }} orders stay on the book.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpcategoryunprotected",
          },
        },
        // ---------------------------------------------------------------- heartbeat and stream
        {
          alert: "BybitDcpHeartbeatGapHigh",
          expr: "account_product:bybit_dcp_ws_heartbeat_overdue_window:ratio >= %(heartbeatGapWarningRatio)s" % $._config,
          'for': $._config.forDurations.BybitDcpHeartbeatGapHigh,
          keep_firing_for: $._config.keepFiringFor.BybitDcpHeartbeatGapHigh,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Private-stream heartbeat is late by half the DCP window.",
            description: "The heartbeat of account {{ $labels.account }} is overdue by {{ $value | humanizePercentage }} of the {{ $labels.product }} DCP window (past the ping interval) for over a minute. A DCP-protected connection on this path is at risk.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpheartbeatgaphigh",
          },
        },
        {
          alert: "BybitDcpHeartbeatGapCritical",
          expr: "account_product:bybit_dcp_ws_heartbeat_overdue_window:ratio >= %(heartbeatGapCriticalRatio)s" % $._config,
          'for': $._config.forDurations.BybitDcpHeartbeatGapCritical,
          keep_firing_for: $._config.keepFiringFor.BybitDcpHeartbeatGapCritical,
          labels: {
            severity: "critical",
          },
          annotations: {
            summary: "Private-stream heartbeat silent for almost the whole DCP window.",
            description: "The heartbeat of account {{ $labels.account }} is overdue by {{ $value | humanizePercentage }} of the {{ $labels.product }} DCP window (past the ping interval) for over a minute. DCP is about to fire, or already fired, for protected connections that share this network path.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpheartbeatgapcritical",
          },
        },
        {
          alert: "BybitDcpStreamDisconnected",
          expr: "bybit_dcp_ws_connected == 0",
          'for': $._config.forDurations.BybitDcpStreamDisconnected,
          keep_firing_for: $._config.keepFiringFor.BybitDcpStreamDisconnected,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Exporter's private stream to Bybit is down.",
            description: "The private websocket of account {{ $labels.account }} on {{ $labels.instance }} has not been authenticated and subscribed for 5 minutes (connected = {{ $value }}). DCP triggers are only recovered from order history after it reconnects.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpstreamdisconnected",
          },
        },
        // round(): increase() extrapolates to the range's edges, so exactly 3 reconnects read as
        // ~3.005; "more than 3" means 4 whole reconnects or more. Over 15 minutes by default.
        {
          alert: "BybitDcpReconnectFlapping",
          expr: "round(sum by (job, instance, account) (increase(bybit_dcp_ws_reconnects_total[%(reconnectFlappingWindow)s]))) > %(reconnectFlappingCount)s" % $._config,
          'for': $._config.forDurations.BybitDcpReconnectFlapping,
          keep_firing_for: $._config.keepFiringFor.BybitDcpReconnectFlapping,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Private stream keeps reconnecting.",
            description: "Account {{ $labels.account }} on {{ $labels.instance }} reconnected its private stream about {{ $value | printf \"%%.0f\" }} times in the last %(reconnectFlappingWindow)s." % $._config,
            runbook_url: $._config.runbookUrlPattern % "bybitdcpreconnectflapping",
          },
        },
        {
          alert: "BybitDcpHeartbeatRttHigh",
          expr: "account:bybit_dcp_ws_ping_rtt_seconds:quantile_rate5m{quantile=\"0.9\"} > %(heartbeatRttHighSeconds)s" % $._config,
          'for': $._config.forDurations.BybitDcpHeartbeatRttHigh,
          keep_firing_for: $._config.keepFiringFor.BybitDcpHeartbeatRttHigh,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Heartbeat round trip to Bybit is slow.",
            description: "The 90th percentile ping-to-pong time of account {{ $labels.account }} is {{ $value | humanizeDuration }} over %(heartbeatRttWindow)s, for %(for)s." % ($._config { 'for': $._config.forDurations.BybitDcpHeartbeatRttHigh }),
            runbook_url: $._config.runbookUrlPattern % "bybitdcpheartbeatrtthigh",
          },
        },
        // ---------------------------------------------------------------- DCP triggers
        // One alert per trigger: the exporter lists each trigger as a series of its own
        // (bybit_dcp_trigger_info{trigger=<first cancel's updatedTime in ms>}), and the alert is
        // true in the first minute of a series' life, then held 30 minutes. A second trigger
        // while the first still fires is a new alert, so Alertmanager notifies again; the id is
        // Bybit's time, so two replicas watching one account name a trigger alike. for: 0m: a
        // trigger is a fact, not a blip.
        {
          alert: "BybitDcpTriggered",
          expr: |||
            bybit_dcp_trigger_info
              unless
            bybit_dcp_trigger_info offset %(triggerNewFor)s
          ||| % $._config,
          'for': $._config.forDurations.BybitDcpTriggered,
          keep_firing_for: $._config.keepFiringFor.BybitDcpTriggered,
          labels: {
            severity: "critical",
          },
          annotations: {
            summary: "Bybit DCP fired and cancelled open orders.",
            description: "DCP triggered on account {{ $labels.account }} for {{ $labels.product }} (first cancel at {{ $labels.trigger }} ms): every DCP-protected connection was gone for longer than the window, and Bybit cancelled the product's open orders.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcptriggered",
          },
        },
        // ---------------------------------------------------------------- re-assertion
        // Drift that was put back leaves a trace: info (chat), for 15 minutes after each
        // verified re-assertion. Someone or something changed the window behind the desk.
        // One alert per re-assertion, as for triggers: count_values turns the time of the last
        // verified re-assertion into the label `reassertion`, so the next re-assertion is a new
        // alert (the previous one resolves as the time moves on) and Alertmanager notifies again,
        // however soon it comes. `without ()` keeps every label of the series (target labels too).
        {
          alert: "BybitDcpWindowReasserted",
          expr: |||
            count_values without () ("reassertion",
              bybit_dcp_reassert_last_success_timestamp_seconds > time() - %(reassertedRecentSeconds)s
            )
          ||| % $._config,
          'for': $._config.forDurations.BybitDcpWindowReasserted,
          keep_firing_for: $._config.keepFiringFor.BybitDcpWindowReasserted,
          labels: {
            severity: "info",
          },
          annotations: {
            summary: "A drifted DCP window was put back.",
            description: "The {{ $labels.product }} DCP window of account {{ $labels.account }} had drifted and the exporter re-asserted it at {{ $labels.reassertion | humanizeTimestamp }}. Find out who or what changed it.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpwindowreasserted",
          },
        },
        // Failures keep coming while the drift is still there.
        {
          alert: "BybitDcpReassertFailing",
          expr: |||
            increase(bybit_dcp_reassert_failures_total[15m]) > 0
              and on (job, instance, account, product)
            (bybit_dcp_window_drift == 1)
          |||,
          'for': $._config.forDurations.BybitDcpReassertFailing,
          keep_firing_for: $._config.keepFiringFor.BybitDcpReassertFailing,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Re-asserting the DCP window keeps failing.",
            description: "{{ $value | printf \"%.0f\" }} re-assertion(s) of the {{ $labels.product }} DCP window failed on account {{ $labels.account }} in the last 15 minutes and the window still drifts.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpreassertfailing",
          },
        },
        {
          alert: "BybitDcpReassertBlocked",
          // One alert per account: a refused key stops every product at once.
          expr: 'max without (product, reason) (bybit_dcp_reassert_blocked{reason="credentials"}) == 1',
          'for': $._config.forDurations.BybitDcpReassertBlocked,
          keep_firing_for: $._config.keepFiringFor.BybitDcpReassertBlocked,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "DCP re-assertion stopped after a credential or permission error.",
            description: "Re-assertion for account {{ $labels.account }} on {{ $labels.instance }} is blocked (value {{ $value }}) after Bybit refused the key, signature or permission. It stays stopped until the configuration or credentials change.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpreassertblocked",
          },
        },
        // Another writer undoes the exporter's sets: it stopped writing, and someone must choose
        // which of the two keeps the window (the exporter resumes after 15 quiet minutes).
        {
          alert: "BybitDcpReassertContended",
          expr: 'bybit_dcp_reassert_blocked{reason="contended"} == 1',
          'for': $._config.forDurations.BybitDcpReassertContended,
          keep_firing_for: $._config.keepFiringFor.BybitDcpReassertContended,
          labels: {
            severity: "critical",
          },
          annotations: {
            summary: "Another writer keeps changing the DCP window back; re-assertion stood down.",
            description: "On account {{ $labels.account }} ({{ $labels.instance }}) the {{ $labels.product }} DCP window set by the exporter was changed back repeatedly within minutes, so it stopped writing it. Find the other writer (another exporter or replica with another desired window, a bot, the web UI) and keep one.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpreassertcontended",
          },
        },
        // ---------------------------------------------------------------- REST API health
        // Bybit accepts a request when server_time - recv_window <= timestamp < server_time + 1 s.
        // Skew is Bybit time minus local time: a local clock 5 s behind (skew +5) or 1 s ahead
        // (skew -1) gets 10002. Warn well before either edge.
        {
          alert: "BybitDcpClockSkew",
          expr: |||
            bybit_dcp_clock_skew_seconds > %(clockSkewAheadSeconds)s
              or
            bybit_dcp_clock_skew_seconds < %(clockSkewBehindSeconds)s
          ||| % $._config,
          'for': $._config.forDurations.BybitDcpClockSkew,
          keep_firing_for: $._config.keepFiringFor.BybitDcpClockSkew,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Local clock is drifting out of Bybit's receive window.",
            description: "Bybit's clock minus the local clock is {{ $value | printf \"%.2f\" }} s for account {{ $labels.account }} on {{ $labels.instance }}. Requests fail with 10002 at +5 s or -1 s.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpclockskew",
          },
        },
        // A reading of Bybit's clock the exporter refused (exporter/bybit/timeframe.py): a pong
        // more than 5 minutes from Bybit's server time, or a server time a day off. Never
        // applied, so nothing is signed far ahead; but something answers as Bybit that is not.
        {
          alert: "BybitDcpClockSkewRefused",
          expr: "increase(bybit_dcp_clock_skew_refused_total[%(clockSkewRefusedWindow)s]) > 0" % $._config,
          'for': $._config.forDurations.BybitDcpClockSkewRefused,
          keep_firing_for: $._config.keepFiringFor.BybitDcpClockSkewRefused,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "A reading of Bybit's clock was refused as too far off.",
            description: "Account {{ $labels.account }} on {{ $labels.instance }} refused a reading of Bybit's clock from {{ $labels.source }} in the last %(clockSkewRefusedWindow)s: it was minutes (a pong) or a day (the server time) away from Bybit's time as known. The time offset was kept; find what answered as Bybit." % $._config,
            runbook_url: $._config.runbookUrlPattern % "bybitdcpclockskewrefused",
          },
        },
        {
          alert: "BybitDcpRateLimitHeadroomLow",
          expr: "account_endpoint:bybit_dcp_api_rate_limit_headroom:ratio < %(rateLimitHeadroomRatio)s" % $._config,
          'for': $._config.forDurations.BybitDcpRateLimitHeadroomLow,
          keep_firing_for: $._config.keepFiringFor.BybitDcpRateLimitHeadroomLow,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "Bybit REST rate limit nearly used up.",
            description: "Only {{ $value | humanizePercentage }} of the {{ $labels.endpoint }} rate limit is left for account {{ $labels.account }} (X-Bapi-Limit-Status), for 5 minutes. The limit is shared with every client using the same account.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpratelimitheadroomlow",
          },
        },
      ],
    },
    // Guardian liveness and DCP drills. Self-contained: no recording rule of the group above
    // is used.
    {
      name: "bybit-dcp-guardian-drill",
      rules: [
        // The guardian let go: the bot stopped showing signs of life, the guarded dcp.*
        // connection is closed, and DCP cancels the bot's orders after the window.
        {
          alert: "BybitDcpGuardianLetGo",
          expr: |||
            bybit_dcp_guardian_armed == 0
              and on (job, instance, account)
            bybit_dcp_guardian_transitions_total{to="released"} > 0
          |||,
          'for': $._config.forDurations.BybitDcpGuardianLetGo,
          keep_firing_for: $._config.keepFiringFor.BybitDcpGuardianLetGo,
          labels: {
            severity: "critical",
          },
          annotations: {
            summary: "The guardian let go of DCP because the bot stopped showing signs of life.",
            description: "The guardian of account {{ $labels.account }} released its {{ $labels.product }} dcp.* connection: the bot sent no sign of life for longer than its liveness timeout. DCP cancels the bot's {{ $labels.product }} orders after the window unless the bot returns.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpguardianletgo",
          },
        },
        // A guardian that never armed holds nothing: the bot is not protected by it.
        {
          alert: "BybitDcpGuardianNeverArmed",
          expr: |||
            bybit_dcp_guardian_armed == 0
              and on (job, instance, account)
            bybit_dcp_guardian_transitions_total{to="armed"} == 0
          |||,
          'for': $._config.forDurations.BybitDcpGuardianNeverArmed,
          keep_firing_for: $._config.keepFiringFor.BybitDcpGuardianNeverArmed,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "The guardian has never seen a sign of life from its bot.",
            description: "The guardian of account {{ $labels.account }} has not armed {{ $labels.product }} since the exporter started: no valid liveness signal arrived (check the bot's token, file or query). Until it arms, nothing holds DCP for the bot.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpguardianneverarmed",
          },
        },
        // The last scheduled drill did not see DCP cancel the canary in time (or saw more cancelled).
        {
          alert: "BybitDcpDrillFailed",
          expr: "bybit_dcp_drill_last_success == 0",
          'for': $._config.forDurations.BybitDcpDrillFailed,
          keep_firing_for: $._config.keepFiringFor.BybitDcpDrillFailed,
          labels: {
            severity: "warning",
          },
          annotations: {
            summary: "A scheduled DCP drill failed.",
            description: "The last DCP drill of account {{ $labels.account }} for {{ $labels.product }} did not pass: DCP did not cancel the canary within window + tolerance, cancelled other orders too, or the drill was refused or errored. The exporter's log line \"DCP drill failed\" says which.",
            runbook_url: $._config.runbookUrlPattern % "bybitdcpdrillfailed",
          },
        },
      ],
    },
    ],
  },
}
