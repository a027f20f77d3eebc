"""The peer of benches/cdf.rs: cognite-extractor-utils' TimeSeriesUploadQueue with its defaults,
fed the same JSON-lines file of datapoints, uploading to the same CDF test server.

Usage: cdf_peer.py FILE; COGNITE_BASE_URL, COGNITE_PROJECT and COGNITE_TOKEN in the environment.
"""

import json
import os
import sys

from cognite.client import ClientConfig, CogniteClient
from cognite.client.credentials import Token
from cognite.extractorutils.uploader import TimeSeriesUploadQueue

client = CogniteClient(
    ClientConfig(
        client_name="tapline-bench-peer",
        project=os.environ["COGNITE_PROJECT"],
        credentials=Token(os.environ["COGNITE_TOKEN"]),
        base_url=os.environ["COGNITE_BASE_URL"],
    )
)
queue = TimeSeriesUploadQueue(client)
with open(sys.argv[1]) as lines:
    for line in lines:
        point = json.loads(line)
        queue.add_to_upload_queue(
            external_id=point["externalId"], datapoints=[(point["timestamp"], point["value"])]
        )
queue.upload()
