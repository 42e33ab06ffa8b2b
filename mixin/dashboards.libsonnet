// The Grafana dashboards. mixin/dashboards/bybit-dcp.json (the panels, edited as JSON in Grafana and
// pasted back) is the body; its uid, tags and the job variable's query come from _config.
{
  grafanaDashboards+:: {
    'bybit-dcp.json': (import 'dashboards/bybit-dcp.json') + {
      uid: $._config.dashboardUid,
      tags: $._config.dashboardTags,
      templating+: {
        list: [
          if v.name == 'job'
          then v { definition: 'label_values(bybit_dcp_exporter_build_info%s, job)' % $._config.jobMatcher, query: self.definition }
          else v
          for v in super.list
        ],
      },
    },
  },
}
