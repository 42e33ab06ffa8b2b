// _config: what a user of the mixin sets. Override any field:
//
//   (import 'mixin/mixin.libsonnet') + { _config+:: { runbookUrlPattern: 'https://wiki.example/dcp#%s' } }
{
  _config+:: {
    // A label matcher for the exporter's scrape job, e.g. 'job="bybit-dcp-exporter"'. Empty:
    // any target that exposes the exporter's metrics (the rules join on job and instance).
    jobSelector: '',
    // '{job=...}' or nothing, for the places that select the exporter's targets.
    jobMatcher: if self.jobSelector == '' then '' else '{%s}' % self.jobSelector,

    // Where each alert's runbook entry is; %s is the entry's anchor (the alert name, lower case).
    runbookUrlPattern: 'https://github.com/bybit-dcp-exporter/bybit-dcp-exporter/blob/main/alerts/runbook.md#%s',

    dashboardUid: 'bybit-dcp',
    dashboardTags: ['bybit', 'dcp', 'trading'],

    // Alert thresholds, as PromQL number literals.
    configStaleSeconds: '900',  // last good DCP-config poll older than this
    heartbeatGapWarningRatio: '0.5',  // heartbeat overdue, as a fraction of the DCP window
    heartbeatGapCriticalRatio: '0.8',
    reconnectFlappingCount: '3',  // whole reconnects in reconnectFlappingWindow
    reconnectFlappingWindow: '15m',
    heartbeatRttHighSeconds: '0.5',  // 90th percentile of the ping RTT over heartbeatRttWindow
    heartbeatRttWindow: '5m',
    triggerNewFor: '1m',  // a trigger series counts as new this long (the alert then holds it)
    reassertedRecentSeconds: '900',  // BybitDcpWindowReasserted is shown this long after each re-assertion
    clockSkewAheadSeconds: '2',  // Bybit's clock ahead of ours (Bybit refuses at 5)
    clockSkewBehindSeconds: '-0.5',  // ... behind ours (Bybit refuses at -1)
    clockSkewRefusedWindow: '15m',  // BybitDcpClockSkewRefused: a refused reading of Bybit's clock within this range
    rateLimitHeadroomRatio: '0.2',  // fraction of a REST rate limit left
    eventLoopLagSeconds: '0.1',  // 99th percentile of the exporter's own event-loop lag ...
    eventLoopLagWindow: '5m',  // ... over this range

    // Per alert: how long the condition must hold before it fires ...
    forDurations: {
      BybitDcpExporterDown: '5m',
      BybitDcpExporterAbsent: '10m',
      BybitDcpConfigPollFailing: '10m',
      BybitDcpConfigStale: '5m',
      BybitDcpNotEnabled: '5m',
      BybitDcpWindowDrift: '10m',
      BybitDcpCategoryUnprotected: '10m',
      BybitDcpHeartbeatGapHigh: '1m',
      BybitDcpHeartbeatGapCritical: '1m',
      BybitDcpStreamDisconnected: '5m',
      BybitDcpReconnectFlapping: '5m',
      BybitDcpHeartbeatRttHigh: '10m',
      BybitDcpTriggered: '0m',
      BybitDcpWindowReasserted: '0m',
      BybitDcpReassertFailing: '10m',
      BybitDcpReassertBlocked: '5m',
      BybitDcpReassertContended: '1m',
      BybitDcpClockSkew: '5m',
      BybitDcpClockSkewRefused: '0m',
      BybitDcpRateLimitHeadroomLow: '5m',
      BybitDcpGuardianLetGo: '15s',
      BybitDcpGuardianNeverArmed: '10m',
      BybitDcpDrillFailed: '0m',
      BybitDcpExporterEventLoopLag: '10m',
    },
    // ... and how long it keeps firing after the condition clears.
    keepFiringFor: {
      BybitDcpExporterDown: '5m',
      BybitDcpExporterAbsent: '5m',
      BybitDcpConfigPollFailing: '5m',
      BybitDcpConfigStale: '5m',
      BybitDcpNotEnabled: '10m',
      BybitDcpWindowDrift: '10m',
      BybitDcpCategoryUnprotected: '10m',
      BybitDcpHeartbeatGapHigh: '5m',
      BybitDcpHeartbeatGapCritical: '5m',
      BybitDcpStreamDisconnected: '5m',
      BybitDcpReconnectFlapping: '10m',
      BybitDcpHeartbeatRttHigh: '10m',
      BybitDcpTriggered: '30m',
      BybitDcpWindowReasserted: '0m',
      BybitDcpReassertFailing: '10m',
      BybitDcpReassertBlocked: '5m',
      BybitDcpReassertContended: '5m',
      BybitDcpClockSkew: '5m',
      BybitDcpClockSkewRefused: '15m',
      BybitDcpRateLimitHeadroomLow: '5m',
      BybitDcpGuardianLetGo: '1m',
      BybitDcpGuardianNeverArmed: '5m',
      BybitDcpDrillFailed: '5m',
      BybitDcpExporterEventLoopLag: '5m',
    },
  },
}
