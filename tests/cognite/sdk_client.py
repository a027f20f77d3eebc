"""The official Cognite Python SDK against the CDF test server, for tests/it/cdf_sdk.rs.

Usage: sdk_client.py COMMAND [ARGS...]; the server, project and token come from the environment
(COGNITE_BASE_URL, COGNITE_PROJECT, COGNITE_TOKEN). Each command prints one JSON document.

  write-all                 writes RAW rows, datapoints, events and extraction pipeline runs
  rows DB TABLE             every row of a RAW table: {key: columns}
  datapoints XID...         every datapoint of each series: {xid: [[timestamp, value], ...]}
  series XID...             each series' isString and dataSetId: {xid: {...}}
  events XID...             the events with these external ids: {xid: event}
  all-events                every event: [event, ...]
  runs PIPELINE             the runs of a pipeline, newest first: [{status, message}, ...]
"""

import json
import os
import sys

from cognite.client import ClientConfig, CogniteClient
from cognite.client.credentials import Token
from cognite.client.data_classes import Event, ExtractionPipelineRunWrite, TimeSeriesWrite


def client():
    config = ClientConfig(
        client_name="tapline-tests",
        project=os.environ["COGNITE_PROJECT"],
        credentials=Token(os.environ["COGNITE_TOKEN"]),
        base_url=os.environ["COGNITE_BASE_URL"],
        max_workers=4,
    )
    return CogniteClient(config)


def write_all(c):
    c.raw.rows.insert("sdk-db", "sdk-table", {"r1": {"a": 1}, "r2": {"b": "two"}}, ensure_parent=True)
    c.time_series.create([TimeSeriesWrite(external_id="sdk-num"), TimeSeriesWrite(external_id="sdk-str", is_string=True)])
    c.time_series.data.insert([(1000, 1.5), (2000, -2.0), (3000, 1e100)], external_id="sdk-num")
    c.time_series.data.insert([(1000, "a"), (2000, "b")], external_id="sdk-str")
    c.events.create([Event(external_id="sdk-e1", start_time=10, end_time=20, type="t", metadata={"k": "v"})])
    c.extraction_pipelines.runs.create(ExtractionPipelineRunWrite(extpipe_external_id="sdk-pipe", status="success"))
    c.extraction_pipelines.runs.create(
        ExtractionPipelineRunWrite(extpipe_external_id="sdk-pipe", status="failure", message="broke")
    )
    return {"written": True}


def rows(c, db, table):
    return {row.key: row.columns for row in c.raw.rows.list(db, table, limit=1_000_000)}


def datapoints(c, *xids):
    out = {}
    for xid in xids:
        dps = c.time_series.data.retrieve(external_id=xid, start=-2208988800000, end=4102444799999, limit=None)
        out[xid] = [[t, v] for t, v in zip(dps.timestamp, dps.value)]
    return out


def series(c, *xids):
    found = c.time_series.retrieve_multiple(external_ids=list(xids))
    return {ts.external_id: {"isString": ts.is_string, "dataSetId": ts.data_set_id} for ts in found}


def events(c, *xids):
    found = c.events.retrieve_multiple(external_ids=list(xids), ignore_unknown_ids=True)
    return {e.external_id: e.dump(camel_case=True) for e in found}


def all_events(c):
    return [e.dump(camel_case=True) for e in c.events.list(limit=None)]


def runs(c, pipeline):
    found = c.extraction_pipelines.runs.list(external_id=pipeline, limit=1000)
    return [{"status": r.status, "message": r.message} for r in found]


COMMANDS = {
    "write-all": write_all,
    "rows": rows,
    "datapoints": datapoints,
    "series": series,
    "events": events,
    "all-events": all_events,
    "runs": runs,
}

if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    print(json.dumps(COMMANDS[command](client(), *args)))
